// The orchestrator's DOM pieces: a workflow in the selector, a form field, an agent row,
// a runs-list entry, the result; the view (view.ts) places and updates them.
import type { JsonValue } from "../frames";
import { h } from "../shared/dom";
import { formatLatency, formatTokens } from "../shared/format";
import { type FoldLook, foldableBlock } from "../shared/fold";
import type { RunSummary, WorkflowInfo } from "./api";
import { type AgentNode, type ArgField, type FieldInput, sourceLabel } from "./state";

export const LOG_LINE_HEIGHT = 18;
const FOLD_LINES = 24;
const FOLD_CHARS = 2000;

export function button(className: string, text: string, action: string): HTMLButtonElement {
  const b = h("button", `or-button ${className}`, text);
  b.type = "button";
  b.dataset["action"] = action;
  return b;
}

export function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

// The selector.

export function workflowOption(workflow: WorkflowInfo, selected: boolean): HTMLElement {
  const item = h("button", "or-workflow");
  item.type = "button";
  item.dataset["action"] = "select";
  item.dataset["name"] = workflow.name;
  item.setAttribute("role", "option");
  item.setAttribute("aria-selected", String(selected));
  const top = h("span", "or-workflow-top");
  top.append(
    h("span", "or-workflow-name", workflow.name),
    h("span", `or-source or-source-${workflow.source}`, sourceLabel(workflow.source)),
  );
  item.append(top, h("span", "or-workflow-description", workflow.description));
  item.title = workflow.path;
  return item;
}

// The form.

const TYPE_HINTS: Record<ArgField["type"], string> = {
  string: "text",
  number: "number",
  integer: "integer",
  boolean: "yes / no",
  array: "JSON array",
  object: "JSON object",
};

/** One argument's row: its label (required marked), input, description and problems. */
export function fieldRow(
  field: ArgField,
  input: FieldInput,
  formId: string,
): { row: HTMLElement; control: HTMLInputElement | HTMLTextAreaElement; error: HTMLElement } {
  const id = `${formId}-${field.name}`;
  const row = h("div", "or-field");
  row.dataset["arg"] = field.name;
  row.dataset["type"] = field.type;
  const label = h("label", "or-field-label");
  label.htmlFor = id;
  label.append(h("span", "or-field-name", field.name));
  if (field.required) {
    const mark = h("span", "or-required", "*");
    mark.title = "required";
    label.append(mark);
  }
  label.append(h("span", "or-field-type", TYPE_HINTS[field.type]));
  let control: HTMLInputElement | HTMLTextAreaElement;
  if (field.type === "boolean") {
    const box = h("input", "or-input or-checkbox");
    box.type = "checkbox";
    box.checked = input.kind === "bool" && input.value;
    control = box;
  } else if (field.type === "array" || field.type === "object") {
    const area = h("textarea", "or-input or-textarea");
    area.rows = 2;
    area.spellcheck = false;
    area.value = input.kind === "text" ? input.text : "";
    area.placeholder = field.type === "array" ? '["…", "…"]' : '{"key": "value"}';
    control = area;
  } else {
    const text = h("input", "or-input");
    text.type = "text";
    if (field.type !== "string") text.inputMode = field.type === "integer" ? "numeric" : "decimal";
    text.value = input.kind === "text" ? input.text : "";
    control = text;
  }
  control.id = id;
  control.dataset["arg"] = field.name;
  if (field.default !== undefined && field.default !== null && field.type !== "boolean") {
    control.setAttribute("placeholder", `default: ${JSON.stringify(field.default)}`);
  }
  if (field.required) control.setAttribute("aria-required", "true");
  const error = h("div", "or-field-error");
  error.id = `${id}-error`;
  error.setAttribute("role", "alert");
  error.hidden = true;
  control.setAttribute("aria-describedby", `${id}-description ${id}-error`);
  const description = h("div", "or-field-description", field.description);
  description.id = `${id}-description`;
  row.append(label, control, description, error);
  return { row, control, error };
}

// The run pane's tree.

const STATE_ICONS: Record<AgentNode["state"], string> = {
  pending: "○",
  running: "◐",
  completed: "✓",
  failed: "✗",
  cached: "↷",
  cancelled: "■",
};

export function stateText(agent: AgentNode): string {
  return agent.state === "cached" ? "skipped (cached)" : agent.state;
}

interface AgentParts {
  icon: HTMLElement;
  state: HTMLElement;
  tokens: HTMLElement;
  duration: HTMLElement;
  last: HTMLElement;
  traces: HTMLButtonElement;
}

const agentParts = new WeakMap<HTMLElement, AgentParts>();

export function createAgentRow(label: string, key: string): HTMLElement {
  const row = h("div", "or-agent");
  row.dataset["key"] = key;
  row.setAttribute("role", "treeitem");
  row.dataset["agent"] = label;
  const icon = h("span", "or-agent-icon");
  icon.setAttribute("aria-hidden", "true");
  const state = h("span", "or-agent-state");
  const tokens = h("span", "or-agent-tokens");
  const duration = h("span", "or-agent-duration");
  const last = h("span", "or-agent-last");
  const traces = button("or-traces", "Traces", "traces");
  traces.setAttribute("aria-label", `Traces of ${label}`);
  traces.dataset["agent"] = label;
  row.append(icon, h("span", "or-agent-label", label), state, tokens, duration, last, traces);
  agentParts.set(row, { icon, state, tokens, duration, last, traces });
  return row;
}

/** Its duration: the whole one once ended; while it runs, so far in whole seconds. */
export function agentDurationMs(agent: AgentNode, nowMs: number): number | null {
  if (agent.state === "cached") return null;
  if (agent.durationMs !== null) return agent.durationMs;
  if (agent.startedMs === null) return null;
  if (agent.endedMs !== null) return Math.max(0, agent.endedMs - agent.startedMs);
  return Math.floor(Math.max(0, nowMs - agent.startedMs) / 1000) * 1000;
}

export function updateAgentRow(row: HTMLElement, agent: AgentNode, nowMs: number): void {
  const p = agentParts.get(row);
  if (p === undefined) return;
  row.dataset["state"] = agent.state;
  setText(p.icon, STATE_ICONS[agent.state]);
  setText(p.state, stateText(agent));
  setText(p.tokens, agent.state === "cached" ? "" : `${formatTokens(agent.tokens)} tokens`);
  updateAgentDuration(row, agent, nowMs);
  const last = agent.error ?? agent.lastLog ?? "";
  setText(p.last, last);
  p.last.title = last;
  p.last.classList.toggle("is-error", agent.error !== null);
  // A cached agent ran no model call in this run: nothing to open.
  p.traces.hidden = agent.chatId === null;
  if (agent.chatId !== null) p.traces.dataset["chatId"] = agent.chatId;
}

export function updateAgentDuration(row: HTMLElement, agent: AgentNode, nowMs: number): void {
  const p = agentParts.get(row);
  if (p === undefined) return;
  const duration = agentDurationMs(agent, nowMs);
  const running = agent.state === "running" && agent.endedMs === null;
  const text = duration === null ? "" : running ? `${duration / 1000} s` : formatLatency(duration);
  setText(p.duration, text);
}

// The runs list.

export function runEntryRow(entry: RunSummary, selected: boolean, nowMs: number): HTMLElement {
  const row = h("button", "or-run-entry");
  row.type = "button";
  row.dataset["action"] = "open";
  row.dataset["runId"] = entry.run_id;
  row.dataset["state"] = entry.state;
  row.setAttribute("aria-pressed", String(selected));
  const tokens =
    `${formatTokens(entry.tokens_used)}` + (entry.budget !== null ? ` / ${formatTokens(entry.budget)}` : "");
  row.append(
    h("span", `or-state-badge or-state-${entry.state}`, entry.state),
    h("span", "or-run-workflow", entry.workflow),
    h("span", "or-run-when", ago(entry.created_at, nowMs)),
    h("span", "or-run-tokens", `${tokens} tokens`),
    h("span", "or-run-id", entry.run_id.slice(0, 8)),
  );
  row.setAttribute("aria-label", `${entry.workflow}, ${entry.state}, ${ago(entry.created_at, nowMs)}`);
  return row;
}

export function ago(iso: string, nowMs: number): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const s = Math.max(0, Math.round((nowMs - at) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}

// The result.

/** How the run pane folds its result. */
const RESULT_LOOK: FoldLook = {
  jsonClass: "or-result-json",
  textClass: "or-result-text",
  wrapClass: "or-result-wrap",
  button: (text) => button("or-unfold", text, "unfold"),
  foldChars: FOLD_CHARS,
  foldLines: FOLD_LINES,
};

/** The result, readable: JSON pretty-printed and highlighted, long text folded. */
export function resultBlock(result: JsonValue, folded: boolean, unfold: () => void): HTMLElement {
  return foldableBlock(result, folded, unfold, RESULT_LOOK);
}
