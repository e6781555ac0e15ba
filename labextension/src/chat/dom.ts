// DOM builders for the chat view: timeline chips, turn groups, bubbles and tool calls.
import { formatRate, formatTokens, hitRate, rateClass } from "../shared/format";
import { highlight, payloadBlock, prettyJson } from "../shared/json";
import type { ChatMessage, ToolCallView } from "./protocol";
import type { CallStatus, ChatState, SessionState } from "./state";
import { h } from "../shared/dom";
import { thumbnailGrid, type ImageContext } from "../shared/images";

/** Characters of a tool payload shown (the rest is cut with a note). */
const PAYLOAD_CUT = 6000;

function button(className: string, text?: string): HTMLButtonElement {
  const b = h("button", className, text);
  b.type = "button";
  return b;
}

export const STATE_LABELS: Record<SessionState, string> = {
  in_progress: "running",
  awaiting_input: "awaiting input",
  completed: "finished",
  failed: "failed",
  interrupted: "interrupted",
  cancelled: "cancelled",
};

/** "21:04:05" in local time, or "" for a missing time. */
export function clock(iso: string | null): string {
  if (iso === null) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const two = (n: number): string => String(n).padStart(2, "0");
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

// Timeline

export interface ChipContext {
  active: number | null;
  running: boolean;
  selected: number | null;
  /** The one turn highlighted: the selected one, else the latest. */
  current: number | null;
  collapsed: ReadonlySet<number>;
}

export function createChip(state: ChatState, turn: number, ctx: ChipContext): HTMLElement {
  const summary = state.summaryOf(turn);
  const tools = state.toolCount(turn);
  const rate = hitRate(summary.cache_tokens, summary.input_tokens);
  const chip = button("chat-turn-chip");
  chip.dataset["turn"] = String(turn);
  chip.dataset["tools"] = String(tools);
  chip.dataset["tokens"] = String(summary.tokens_used);
  chip.dataset["hitRate"] = rate === null ? "" : String(rate);
  const active = turn === ctx.active;
  chip.classList.toggle("is-active", active);
  chip.classList.toggle("is-past", !active);
  chip.classList.toggle("is-running", active && ctx.running);
  chip.classList.toggle("is-selected", turn === ctx.selected);
  chip.classList.toggle("is-current", turn === ctx.current);
  chip.classList.toggle("is-collapsed", ctx.collapsed.has(turn));
  chip.classList.toggle("has-error", summary.errors > 0);
  chip.setAttribute("aria-current", active ? "step" : "false");
  chip.setAttribute("aria-pressed", String(turn === ctx.selected));
  const cache = h("span", `chip-cache ${rateClass(rate)}`, `cache ${formatRate(rate)}`);
  cache.title =
    rate === null
      ? "no prompt tokens yet"
      : `prompt cache: ${formatTokens(summary.cache_tokens)} of ` +
        `${formatTokens(summary.input_tokens)} tokens cached` +
        (summary.cache_broken_by !== null ? `; broken by: ${summary.cache_broken_by}` : "");
  chip.append(
    h("span", "chip-number", `Turn ${turn}`),
    h("span", "chip-time", clock(summary.started_at)),
    h("span", "chip-tools", `${tools} tool${tools === 1 ? "" : "s"}`),
    h("span", "chip-tokens", `${formatTokens(summary.tokens_used)} tok`),
    cache,
  );
  chip.title = `Turn ${turn}: show it and fold the turns after it`;
  return chip;
}

export function createRestartMarker(turn: number): HTMLElement {
  const marker = h("span", "chat-restart-marker", "⟳ restart");
  marker.dataset["turn"] = String(turn);
  marker.title = "The kernel restarted here; the session was resumed from its saved state.";
  return marker;
}

// Turn groups

export function createTurnGroup(turn: number): HTMLElement {
  const group = h("section", "chat-turn");
  group.dataset["turn"] = String(turn);
  const header = button("chat-turn-header");
  header.append(h("span", "chat-turn-label"), h("span", "chat-turn-hint"));
  group.append(header, h("div", "chat-turn-body"));
  return group;
}

export function updateTurnHeader(
  group: HTMLElement,
  state: ChatState,
  turn: number,
  collapsed: boolean,
): void {
  const header = group.querySelector<HTMLElement>(".chat-turn-header");
  if (header === null) return;
  header.setAttribute("aria-expanded", String(!collapsed));
  const label = header.querySelector<HTMLElement>(".chat-turn-label");
  const hint = header.querySelector<HTMLElement>(".chat-turn-hint");
  const time = clock(state.summaryOf(turn).started_at);
  if (label !== null) label.textContent = `Turn ${turn}${time ? ` · ${time}` : ""}`;
  if (hint !== null) {
    const n = state.messagesOf(turn).filter((m) => m.role !== "tool").length;
    hint.textContent = collapsed ? `folded · ${n} message${n === 1 ? "" : "s"} · show` : "";
  }
}

export function fillTurnBody(
  body: HTMLElement,
  state: ChatState,
  turn: number,
  expandedCalls: ReadonlySet<string>,
  images: ImageContext,
): void {
  body.replaceChildren();
  for (const message of state.messagesOf(turn)) {
    if (message.role === "tool") continue;
    if (message.restart) {
      const note = h("div", "chat-restart-note", "⟳ Kernel restarted — session resumed");
      note.title = message.content;
      body.append(note);
      continue;
    }
    body.append(messageBubble(state, message, expandedCalls, images));
  }
  const answer = state.answerOf(turn);
  const streamed = state.streaming.get(turn);
  if (answer === undefined && streamed !== undefined && streamed !== "") {
    const bubble = h("div", "chat-msg chat-msg-assistant is-streaming");
    bubble.append(h("div", "chat-msg-role", "assistant"), h("div", "chat-msg-text", streamed));
    body.append(bubble);
  } else if (answer === undefined && state.running() && turn === state.activeTurn()) {
    const bubble = h("div", "chat-msg chat-msg-assistant is-thinking");
    bubble.append(h("div", "chat-msg-role", "assistant"), h("div", "chat-msg-text", "…"));
    body.append(bubble);
  }
}

function messageBubble(
  state: ChatState,
  message: ChatMessage,
  expandedCalls: ReadonlySet<string>,
  images: ImageContext,
): HTMLElement {
  const bubble = h("div", `chat-msg chat-msg-${message.role}`);
  bubble.dataset["index"] = String(message.index);
  bubble.append(h("div", "chat-msg-role", message.role));
  if (message.content !== "") bubble.append(h("div", "chat-msg-text", message.content));
  if (message.images.length > 0) {
    bubble.append(thumbnailGrid(message.images, images.loader, images.lightbox));
  }
  if (message.tool_calls.length > 0) {
    const tools = h("div", "chat-tools");
    for (const call of message.tool_calls) {
      tools.append(toolCall(state, call, expandedCalls.has(call.id)));
    }
    bubble.append(tools);
  }
  return bubble;
}

const STATUS_TEXT: Record<CallStatus, string> = {
  pending: "pending",
  running: "running…",
  done: "done",
  error: "error",
  cancelled: "cancelled",
};

function toolCall(state: ChatState, call: ToolCallView, expanded: boolean): HTMLElement {
  const status = state.callStatus(call);
  const el = h("div", `chat-tool is-${status}`);
  el.dataset["callId"] = call.id;
  el.dataset["status"] = status;
  el.classList.toggle("is-expanded", expanded);
  const head = button("chat-tool-head");
  head.setAttribute("aria-expanded", String(expanded));
  head.append(
    h("span", "chat-tool-chevron"),
    h("span", "chat-tool-name", call.name),
    h("span", "chat-tool-status", STATUS_TEXT[status]),
  );
  el.append(head);
  if (!expanded) return el;
  const body = h("div", "chat-tool-body");
  body.append(h("div", "chat-tool-label", "Input"), payload("chat-tool-input", call.arguments));
  const result = state.results.get(call.id);
  const run = state.runs.get(call.id);
  body.append(h("div", "chat-tool-label", "Output"));
  if (result !== undefined) body.append(payload("chat-tool-output", result.content));
  else if (run !== undefined && !run.running) {
    body.append(payload("chat-tool-output", run.error ?? run.output));
  } else body.append(h("div", "chat-tool-output is-empty", "no result yet"));
  el.append(body);
  return el;
}

function payload(className: string, value: Parameters<typeof prettyJson>[0]): HTMLElement {
  const pre = payloadBlock(`chat-json ${className}`);
  // Plain text (a tool's prose answer) reads better without JSON quotes and escapes.
  const raw = typeof value === "string" && !/^\s*[[{]/.test(value);
  const text = raw ? value : prettyJson(value);
  const shown = text.length > PAYLOAD_CUT ? text.slice(0, PAYLOAD_CUT) : text;
  if (raw) pre.textContent = shown;
  else highlight(shown, pre);
  if (shown.length < text.length) {
    pre.append(h("span", "chat-cut", `\n… ${text.length - shown.length} more characters`));
  }
  return pre;
}
