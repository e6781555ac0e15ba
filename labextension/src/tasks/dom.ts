// The tasks pane's DOM: one entry per task, the result panel, and the formats they use.
import type { TaskUpdate } from "../frames";
import { h } from "../shared/dom";
import { formatLatency, formatTokens } from "../shared/format";
import { type FoldLook, foldableBlock } from "../shared/fold";
import type { ResultReply } from "./protocol";
import { type ShownState, canRetry, durationMs, isActive, shownState } from "./state";

/** An entry's height in px: entries are absolutely placed, only the visible ones exist. */
export const ENTRY_HEIGHT = 62;
/** An answer longer than this many characters (or lines) is folded until asked for. */
export const FOLD_CHARS = 1500;
export const FOLD_LINES = 24;

export const STATE_LABELS: Record<ShownState, string> = {
  pending: "pending",
  running: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
  interrupted: "interrupted",
};

const STOP_REASONS: Record<ResultReply["summary"]["stop_reason"], string> = {
  final: "answered",
  max_turns: "stopped at its turn limit",
  budget: "stopped at its token budget",
  cancelled: "cancelled",
  error: "ended by an error",
};

export function formatCost(usd: number | null): string | null {
  if (usd === null) return null;
  if (usd === 0) return "$0";
  if (usd < 0.0001) return "<$0.0001";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** What the duration cell says: waiting, elapsed (running) or the total (finished). */
export function durationText(task: TaskUpdate, nowMs: number): string {
  const ms = durationMs(task, nowMs);
  if (ms === null) return task.state === "pending" ? "waiting" : "–";
  const text = formatLatency(ms);
  return task.finished_at === null ? `${text} elapsed` : text;
}

/** The parts of an entry that change, kept so an update touches only what it must. */
interface EntryParts {
  badge: HTMLElement;
  title: HTMLElement;
  duration: HTMLElement;
  bar: HTMLElement;
  fill: HTMLElement;
  turns: HTMLElement;
  tool: HTMLElement;
  usage: HTMLElement;
  error: HTMLElement;
  traces: HTMLButtonElement;
  cancel: HTMLButtonElement;
  result: HTMLButtonElement;
  retry: HTMLButtonElement;
}

const parts = new WeakMap<HTMLElement, EntryParts>();

function button(className: string, text: string, action: string): HTMLButtonElement {
  const node = h("button", `tk-button ${className}`, text);
  node.type = "button";
  node.dataset["action"] = action;
  return node;
}

export function createEntry(): HTMLElement {
  const entry = h("div", "tk-entry");
  entry.setAttribute("role", "listitem");
  const top = h("div", "tk-line tk-top");
  const badge = h("span", "tk-badge");
  const title = h("span", "tk-title");
  const duration = h("span", "tk-duration");
  top.append(badge, title, duration);

  const progress = h("div", "tk-line tk-progress");
  const bar = h("span", "tk-bar");
  bar.setAttribute("role", "progressbar");
  const fill = h("span", "tk-bar-fill");
  bar.append(fill);
  const turns = h("span", "tk-turns");
  const tool = h("span", "tk-tool");
  const usage = h("span", "tk-usage");
  const error = h("span", "tk-error");
  progress.append(bar, turns, tool, error, usage);

  const actions = h("div", "tk-actions");
  const traces = button("tk-traces", "Traces", "traces");
  const cancel = button("tk-cancel", "Cancel", "cancel");
  const result = button("tk-result", "View result", "result");
  const retry = button("tk-retry", "Retry", "retry");
  actions.append(cancel, result, retry, traces);

  const body = h("div", "tk-body");
  body.append(top, progress);
  entry.append(body, actions);
  parts.set(entry, {
    badge, title, duration, bar, fill, turns, tool, usage, error, traces, cancel, result, retry,
  }); // prettier-ignore
  return entry;
}

function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

/** Draw a task into an entry made by ``createEntry``. */
export function updateEntry(entry: HTMLElement, task: TaskUpdate, nowMs: number, busy: boolean): void {
  const p = parts.get(entry);
  if (p === undefined) return;
  const state = shownState(task);
  entry.dataset["taskId"] = task.task_id;
  entry.dataset["state"] = state;
  p.badge.className = `tk-badge tk-state-${state}`;
  setText(p.badge, STATE_LABELS[state]);
  setText(p.title, task.title || "(untitled task)");
  p.title.title = task.attempt > 1 ? `${task.title} (attempt ${task.attempt})` : task.title;
  updateDuration(entry, task, nowMs);

  const progress = task.progress;
  const max = progress?.max_turns ?? 0;
  const turn = progress?.turn ?? 0;
  // A completed task is done whatever turn it stopped at: its bar is full.
  const share = state === "completed" ? 1 : max > 0 ? Math.min(1, turn / max) : 0;
  p.fill.style.width = `${(share * 100).toFixed(1)}%`;
  p.bar.setAttribute("aria-valuenow", String(turn));
  p.bar.setAttribute("aria-valuemax", String(max));
  p.bar.setAttribute("aria-label", `turn ${turn} of ${max}`);
  setText(p.turns, max > 0 ? `${turn}/${max} turns` : "");
  const tool = progress?.last_tool ?? null;
  setText(p.tool, tool !== null && state === "running" ? `▸ ${tool}` : tool ?? "");
  p.tool.title = tool !== null ? `last tool call: ${tool}` : "";
  const usage: string[] = [];
  if (progress !== null && progress.tokens_used > 0) {
    usage.push(`${formatTokens(progress.tokens_used)} tokens`);
  }
  const cost = formatCost(progress?.cost_usd ?? null);
  if (cost !== null) usage.push(cost);
  setText(p.usage, usage.join(" · "));
  const error = task.error ?? "";
  setText(p.error, error);
  p.error.title = error;
  p.error.hidden = error === "";

  const cancelling = task.cancel_requested && isActive(task);
  p.cancel.hidden = !isActive(task);
  p.cancel.disabled = cancelling || busy;
  setText(p.cancel, cancelling ? "cancelling…" : "Cancel");
  p.result.hidden = state !== "completed";
  p.retry.hidden = !canRetry(task);
  p.retry.disabled = busy;
  p.traces.hidden = task.chat_id === null;
  for (const b of [p.cancel, p.result, p.retry, p.traces]) {
    b.setAttribute("aria-label", `${b.textContent ?? ""}: ${task.title}`);
  }
}

/** Only the duration: what the ticking clock changes every second. */
export function updateDuration(entry: HTMLElement, task: TaskUpdate, nowMs: number): void {
  const p = parts.get(entry);
  if (p !== undefined) setText(p.duration, durationText(task, nowMs));
}

// The result panel.

/** How the result panel folds an answer. */
const ANSWER_LOOK: FoldLook = {
  jsonClass: "tk-answer tk-answer-json",
  textClass: "tk-answer tk-answer-text",
  wrapClass: "tk-answer-wrap",
  button: (text) => button("tk-unfold", text, "unfold"),
  foldChars: FOLD_CHARS,
  foldLines: FOLD_LINES,
};

/** The answer, readable: JSON pretty-printed and highlighted, text as text; long ones folded. */
export function answerBlock(answer: string, unfold: () => void, folded: boolean): HTMLElement {
  return foldableBlock(answer, folded, unfold, ANSWER_LOOK);
}

export function summaryLine(reply: ResultReply): string {
  const s = reply.summary;
  const parts = [
    `${s.turns} ${s.turns === 1 ? "turn" : "turns"}`,
    `${s.tool_calls} tool ${s.tool_calls === 1 ? "call" : "calls"}`,
    `${formatTokens(s.tokens_used)} tokens`,
  ];
  const cost = formatCost(s.cost_usd);
  if (cost !== null) parts.push(cost);
  parts.push(formatLatency(s.wall_time_s * 1000));
  if (s.stop_reason !== "final") parts.push(STOP_REASONS[s.stop_reason]);
  return parts.join(" · ");
}
