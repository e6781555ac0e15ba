// The orchestrator's state: the workflows, the form's values, the runs list, and each
// opened run built from its frames (a snapshot first, live frames on top).
import type { JsonValue, WorkflowLog, WorkflowStatus, WorkflowStep } from "../frames";
import type { ArgError, ArgInfo, RunDetail, RunSummary, WorkflowInfo } from "./api";

// Arguments: the declared args of a workflow, read from its JSON schema.

export type ArgField = ArgInfo;

/** The declared args, in declaration order. */
export function argFields(workflow: WorkflowInfo): ArgField[] {
  return workflow.args;
}

/**
 * What one field of the form holds: its text as typed (numbers, arrays and objects are
 * typed as text), or a boolean. A field left empty is "unset": the workflow's default applies.
 */
export type FieldInput = { kind: "text"; text: string } | { kind: "bool"; value: boolean };

/** The form's first inputs: each declared default, else empty. */
export function initialInputs(fields: readonly ArgField[]): Map<string, FieldInput> {
  const inputs = new Map<string, FieldInput>();
  for (const field of fields) inputs.set(field.name, inputFor(field, field.required ? undefined : field.default));
  return inputs;
}

/** The input showing ``value`` in ``field`` (from a default, or from the JSON editor). */
export function inputFor(field: ArgField, value: JsonValue | undefined): FieldInput {
  if (field.type === "boolean" && value === undefined) return { kind: "bool", value: false };
  if (field.type === "boolean") return { kind: "bool", value: value === true };
  if (value === undefined || value === null) return { kind: "text", text: "" };
  if (field.type === "string" && typeof value === "string") return { kind: "text", text: value };
  if (field.type === "array" || field.type === "object") {
    return { kind: "text", text: JSON.stringify(value) };
  }
  return { kind: "text", text: typeof value === "string" ? value : JSON.stringify(value) };
}

/** A field's problem found while reading the form (before the manager sees the values). */
export interface ReadProblem {
  field: string;
  message: string;
}

/**
 * The arguments the form's inputs make. Numbers are sent as numbers when they read as one,
 * else as the text typed, so the manager's validation (the only one) names the wrong type;
 * array and object fields must be JSON, which is the one thing checked here.
 */
export function argsFromInputs(
  fields: readonly ArgField[],
  inputs: ReadonlyMap<string, FieldInput>,
): { args: { [key: string]: JsonValue }; problems: ReadProblem[] } {
  const args: { [key: string]: JsonValue } = {};
  const problems: ReadProblem[] = [];
  for (const field of fields) {
    const input = inputs.get(field.name);
    if (input === undefined) continue;
    if (input.kind === "bool") {
      args[field.name] = input.value;
      continue;
    }
    const text = input.text;
    if (text.trim() === "") {
      // Empty: leave it out, so the declared default applies (or "required" is reported).
      continue;
    }
    switch (field.type) {
      case "string":
        args[field.name] = text;
        break;
      case "number":
      case "integer": {
        const n = Number(text.trim());
        args[field.name] = Number.isFinite(n) ? n : text;
        break;
      }
      case "array":
      case "object":
        try {
          args[field.name] = JSON.parse(text) as JsonValue;
        } catch {
          problems.push({ field: field.name, message: `not valid JSON: write a JSON ${field.type}` });
        }
        break;
    }
  }
  return { args, problems };
}

/** The JSON editor's text for these arguments. */
export function argsJson(args: { [key: string]: JsonValue }): string {
  return JSON.stringify(args, null, 2);
}

/** The JSON editor's text read back: an object of arguments, or why not. */
export function parseArgsJson(text: string): { args: { [key: string]: JsonValue } } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { error: `not valid JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { error: 'the arguments must be a JSON object, e.g. {"topic": "duckdb"}' };
  }
  return { args: parsed as { [key: string]: JsonValue } };
}

/** The manager's problems by field (a problem of the whole set under ""). */
export function problemsByField(
  errors: readonly ArgError[],
  read: readonly ReadProblem[],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const all = [...read.map((p) => ({ arg: p.field, message: p.message })), ...errors];
  for (const p of all) {
    const key = p.arg ?? "";
    const list = out.get(key) ?? [];
    list.push(p.message);
    out.set(key, list);
  }
  return out;
}

/** The workflows matching a search: every word in the name, description or source. */
export function searchWorkflows(workflows: readonly WorkflowInfo[], query: string): WorkflowInfo[] {
  const words = query.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return [...workflows];
  return workflows.filter((w) => {
    const text = `${w.name} ${w.description} ${w.source}`.toLowerCase();
    return words.every((word) => text.includes(word));
  });
}

export function sourceLabel(source: string): string {
  return source === "builtin" ? "built-in" : source;
}

// A run: its agents by phase, its log lines, its status.

export type AgentState = "pending" | "running" | "completed" | "failed" | "cached" | "cancelled";

/** One agent call of a run (a step): the latest frame of its ``trace_id``, as a row shows it. */
export interface AgentNode {
  key: string;
  label: string;
  phase: string | null;
  state: AgentState;
  tokens: number;
  /** When it started and ended (ms since the epoch), when known. */
  startedMs: number | null;
  endedMs: number | null;
  durationMs: number | null;
  error: string | null;
  /** Its last log line. */
  lastLog: string | null;
  chatId: string | null;
  /** Bumped on every change, so a painted row can tell it is stale. */
  version: number;
}

export interface PhaseNode {
  /** The phase's name; "" for agents outside any phase. */
  name: string;
  agents: string[];
}

export interface LogLine {
  phase: string | null;
  label: string | null;
  message: string;
  error: boolean;
  /** The line as shown, with its time, phase and agent. */
  text: string;
}

const ENDED = new Set(["completed", "failed", "cancelled", "interrupted"]);

export function isEnded(state: string): boolean {
  return ENDED.has(state);
}

function ms(iso: string | null | undefined): number | null {
  if (iso === null || iso === undefined) return null;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? null : at;
}

function stepState(step: WorkflowStep): AgentState {
  return step.state === "started" ? "running" : step.state;
}

function clock(atMs: number): string {
  const at = new Date(atMs);
  const two = (n: number): string => String(n).padStart(2, "0");
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

export class RunState {
  status: WorkflowStatus;
  readonly agents = new Map<string, AgentNode>();
  readonly phases: PhaseNode[] = [];
  readonly logs: LogLine[] = [];
  /** Lines the run logged before the first one shown (a stored run keeps the last ones). */
  logsDropped = 0;
  args: { [key: string]: JsonValue } = {};
  result: JsonValue = null;
  createdMs: number | null = null;
  /** Whether this kernel runs it (frames follow) or it was read from the store. */
  live = false;
  /** Known from live frames only, its snapshot not yet come. */
  provisional = false;
  /** Bumped on every change of the tree or header; the logs have their own. */
  version = 0;
  logVersion = 0;
  /** The highest ``seq`` applied: a line at or under it came twice (snapshot and frame). */
  private lastSeq = 0;
  private filtered: { key: string; scanned: number; lines: number[] } | null = null;

  constructor(status: WorkflowStatus) {
    this.status = status;
  }

  static fromDetail(detail: RunDetail): RunState {
    const run = new RunState(detail.status);
    run.absorb(detail);
    return run;
  }

  /** A detail read again (the run ended: its result): what it adds to what is shown. */
  absorb(detail: RunDetail): void {
    this.args = detail.args;
    this.result = detail.result;
    this.live = detail.live;
    this.provisional = false;
    this.createdMs = ms(detail.created_at);
    if (this.logs.length === 0) this.logsDropped = Math.max(0, detail.logs_total - detail.logs.length);
    for (const step of detail.steps) this.applyStep(step);
    for (const line of detail.logs) this.applyLog(line);
    this.applyStatus(detail.status);
    this.version += 1;
  }

  get runId(): string {
    return this.status.run_id;
  }

  get ended(): boolean {
    return isEnded(this.status.state);
  }

  get startedMs(): number | null {
    return ms(this.status.started_at);
  }

  /** Elapsed so far while it runs, its total once ended; null before it started. */
  elapsedMs(nowMs: number): number | null {
    const start = this.startedMs;
    if (start === null) return null;
    return Math.max(0, (ms(this.status.finished_at) ?? nowMs) - start);
  }

  /** A run known from its frames alone, until its snapshot comes (a blocked cell delays it). */
  static provisional(runId: string): RunState {
    const run = new RunState({
      type: "workflow:status",
      run_id: runId,
      workflow: "",
      state: "running",
      phase: null,
      agents_done: 0,
      agents_total: 0,
      tokens_used: 0,
      error: null,
      agents_cached: 0,
      agents_failed: 0,
      budget: null,
      started_at: null,
      finished_at: null,
    });
    run.live = true;
    run.provisional = true;
    return run;
  }

  applyStatus(status: WorkflowStatus): void {
    // A frame older than what is shown (it was in flight while a snapshot was read) is
    // skipped: the run only moves forward.
    const now = this.status;
    if (!this.provisional && isEnded(now.state) && !isEnded(status.state)) return;
    if (status.agents_done < now.agents_done || status.tokens_used < now.tokens_used) return;
    this.status = status;
    this.version += 1;
  }

  applyStep(step: WorkflowStep): void {
    const key = step.trace_id ?? step.label ?? step.agent_id;
    let agent = this.agents.get(key);
    if (agent === undefined) {
      agent = {
        key,
        label: step.label !== "" ? step.label : step.agent_id,
        phase: step.phase,
        state: "pending",
        tokens: 0,
        startedMs: null,
        endedMs: null,
        durationMs: null,
        error: null,
        lastLog: null,
        chatId: null,
        version: 0,
      };
      this.agents.set(key, agent);
      this.phaseOf(step.phase).agents.push(key);
    }
    else if (agent.state !== "running" && agent.state !== "pending" && step.state === "started") {
      return; // an older frame of a step that has ended since
    }
    agent.state = stepState(step);
    agent.tokens = step.tokens_used;
    agent.error = step.error;
    agent.startedMs = ms(step.started_at);
    agent.endedMs = ms(step.finished_at);
    agent.durationMs = step.duration_ms;
    agent.chatId = step.chat_id;
    if (step.last_log !== null) agent.lastLog = step.last_log;
    agent.version += 1;
    this.version += 1;
  }

  applyLog(line: WorkflowLog): void {
    if (line.seq > 0) {
      if (line.seq <= this.lastSeq) return;
      this.lastSeq = line.seq;
    }
    const label = line.label ?? line.agent_id;
    const where = [line.phase, label].filter((p) => p !== null && p !== "").join(" › ");
    this.logs.push({
      phase: line.phase,
      label,
      message: line.message,
      error: line.level === "error",
      text: `${clock(ms(line.at) ?? 0)}  ${where !== "" ? `[${where}] ` : ""}${line.message}`,
    });
    const agent = line.trace_id !== null ? this.agents.get(line.trace_id) : undefined;
    if (agent !== undefined) {
      agent.lastLog = line.message;
      agent.version += 1;
      this.version += 1;
    }
    this.logVersion += 1;
  }

  private phaseOf(name: string | null): PhaseNode {
    const key = name ?? "";
    let phase = this.phases.find((p) => p.name === key);
    if (phase === undefined) {
      phase = { name: key, agents: [] };
      this.phases.push(phase);
    }
    return phase;
  }

  /** Indexes of the log lines a filter keeps ("" keeps every phase, or every agent). */
  filteredLogs(phase: string, label: string): readonly number[] {
    const key = `${phase}\u0000${label}`;
    let cached = this.filtered;
    if (cached === null || cached.key !== key) {
      cached = { key, scanned: 0, lines: [] };
      this.filtered = cached;
    }
    // Lines are only ever appended: filter the new ones alone.
    for (let i = cached.scanned; i < this.logs.length; i += 1) {
      if (keeps(this.logs[i], phase, label)) cached.lines.push(i);
    }
    cached.scanned = this.logs.length;
    return cached.lines;
  }

  /** The labels of the agents (for the log's agent filter), in the tree's order. */
  labels(): string[] {
    const out: string[] = [];
    for (const phase of this.phases) {
      for (const key of phase.agents) {
        const agent = this.agents.get(key);
        if (agent !== undefined) out.push(agent.label);
      }
    }
    return out;
  }
}

function keeps(line: LogLine | undefined, phase: string, label: string): boolean {
  if (line === undefined) return false;
  if (phase !== "" && (line.phase ?? "") !== phase) return false;
  if (label !== "" && line.label !== label) return false;
  return true;
}

/** The runs list: a page or more of the project's runs, updated by this kernel's frames. */
export class RunsList {
  entries: RunSummary[] = [];
  nextCursor: string | null = null;
  sessionId: string | null = null;
  clockOffsetMs = 0;
  loaded = false;
  version = 0;

  reset(runs: readonly RunSummary[], nextCursor: string | null, kernelNow: string, append: boolean): void {
    const known = new Set(append ? this.entries.map((e) => e.run_id) : []);
    const fresh = runs.filter((r) => !known.has(r.run_id));
    this.entries = append ? [...this.entries, ...fresh] : [...runs];
    this.nextCursor = nextCursor;
    const now = Date.parse(kernelNow);
    this.clockOffsetMs = Number.isNaN(now) ? 0 : now - Date.now();
    this.loaded = true;
    this.version += 1;
  }

  /** A status frame of this kernel's run: its entry changes, or a new run goes on top. */
  applyStatus(status: WorkflowStatus, args: { [key: string]: JsonValue } | null): void {
    const index = this.entries.findIndex((e) => e.run_id === status.run_id);
    const known = index >= 0 ? this.entries[index] : undefined;
    const entry: RunSummary = {
      run_id: status.run_id,
      workflow: status.workflow,
      state: status.state,
      args: known?.args ?? args ?? {},
      tokens_used: status.tokens_used,
      budget: status.budget,
      agents_done: status.agents_done,
      agents_total: status.agents_total,
      agents_cached: status.agents_cached,
      agents_failed: status.agents_failed,
      error: status.error,
      session_id: known?.session_id ?? this.sessionId,
      created_at: known?.created_at ?? status.started_at ?? new Date(this.nowMs()).toISOString(),
      started_at: status.started_at,
      finished_at: status.finished_at,
    };
    if (index >= 0) this.entries[index] = entry;
    else this.entries.unshift(entry);
    this.version += 1;
  }

  nowMs(): number {
    return Date.now() + this.clockOffsetMs;
  }
}
