// The view's data: traces grouped by turn, cache figures, and the flattened visible rows.
import type { Frame, TraceRecord } from "../frames";
import { timeKey } from "../shared/format";
import type { ChatTotals, DetailReply, PagedTrace, TurnCache } from "./protocol";

/** A trace as the view holds it: from a page (maybe cut to a preview), or whole from a
 * live frame, which has no ``*_cut`` fields. */
export type ShownTrace = TraceRecord & Partial<Pick<PagedTrace, "input_cut" | "output_cut">>;

export interface TraceItem {
  trace: ShownTrace;
  /** A ``tool_trace:start`` without its ``complete`` yet. */
  running: boolean;
  key: number;
}

export interface Turn {
  turn: number;
  items: TraceItem[];
  /** Bumped whenever one of its items is added or replaced, so rows know when to redraw. */
  version: number;
}

export type Row =
  | { type: "turn"; key: string; turn: Turn }
  | { type: "cache"; key: string; turn: Turn }
  | { type: "trace"; key: string; item: TraceItem }
  | { type: "detail"; key: string; item: TraceItem };

/** A trace's full value and request, once asked for on expand. */
export type DetailState =
  | { status: "loading" }
  | { status: "loaded"; reply: DetailReply }
  | { status: "failed"; message: string };

export const ROW_HEIGHT = 28;
/** Height of a panel (a trace's detail, a turn's cache breakdown) until it is measured. */
export const PANEL_ESTIMATE = 120;

function compareItems(a: TraceItem, b: TraceItem): number {
  if (a.key !== b.key) return a.key - b.key;
  return a.trace.id < b.trace.id ? -1 : a.trace.id > b.trace.id ? 1 : 0;
}

export class TraceState {
  readonly items = new Map<string, TraceItem>();
  readonly turns = new Map<number, Turn>();
  readonly cache = new Map<number, TurnCache>();
  totals: ChatTotals | null = null;
  readonly collapsedTurns = new Set<number>();
  readonly expanded = new Set<string>();
  readonly showMore = new Set<string>();
  /** Turns whose cache breakdown is open. */
  readonly cacheOpen = new Set<number>();
  readonly details = new Map<string, DetailState>();
  /** Panels grow with their content: their heights as last measured, by row key. */
  private readonly measured = new Map<string, number>();
  maxLatency = 0;

  private rowsCache: Row[] | null = null;
  private offsetsCache: number[] = [];

  /** Add or replace a trace; returns whether it was new (not known as complete before). */
  upsert(trace: ShownTrace, running: boolean): boolean {
    const known = this.items.get(trace.id);
    if (known !== undefined) {
      if (running && !known.running) return false; // a late start never undoes a complete
      const wasRunning = known.running;
      known.trace = trace;
      known.running = running;
      const owner = this.turns.get(trace.turn_number);
      if (owner !== undefined) owner.version += 1;
      this.noteLatency(trace);
      this.invalidate();
      return wasRunning && !running;
    }
    const item: TraceItem = { trace, running, key: timeKey(trace.started_at) };
    this.items.set(trace.id, item);
    let turn = this.turns.get(trace.turn_number);
    if (turn === undefined) {
      turn = { turn: trace.turn_number, items: [], version: 0 };
      this.turns.set(trace.turn_number, turn);
    }
    insertSorted(turn.items, item);
    turn.version += 1;
    this.noteLatency(trace);
    this.invalidate();
    return !running;
  }

  /** Apply a live frame; returns the trace it completed for the first time, if any. */
  applyFrame(frame: Frame): TraceRecord | null {
    switch (frame.type) {
      case "tool_trace:start":
        this.upsert(
          {
            id: frame.trace_id,
            session_id: frame.session_id,
            chat_id: frame.chat_id,
            turn_number: frame.turn_number,
            kind: "tool",
            tool_name: frame.tool_name,
            call_id: frame.call_id,
            agent_id: frame.agent_id,
            workflow_run_id: null,
            parent_id: frame.parent_id,
            root_id: frame.root_id,
            input: frame.input,
            output: null,
            started_at: frame.started_at,
            finished_at: null,
            latency_ms: null,
            input_tokens: 0,
            output_tokens: 0,
            cache_tokens: 0,
            cache_miss_tokens: 0,
            reasoning_tokens: 0,
            tokens_used: 0,
            cost_usd: null,
            error: null,
            outcome: "success",
          },
          true,
        );
        return null;
      case "tool_trace:complete":
        return this.upsert(frame.trace, false) ? frame.trace : null;
      case "model_call:complete": {
        const fresh = this.upsert(frame.trace, false);
        if (fresh) this.addCache(frame.trace, frame.cache);
        return fresh ? frame.trace : null;
      }
      default:
        return null;
    }
  }

  setCache(turns: TurnCache[], totals: ChatTotals): void {
    this.cache.clear();
    for (const turn of turns) this.cache.set(turn.turn_number, turn);
    this.totals = totals;
  }

  /** Count a live trace into the totals until the kernel's next figures replace them. */
  addToTotals(trace: TraceRecord): void {
    const t = this.totals;
    if (t === null) return;
    t.traces += 1;
    if (trace.kind === "model") t.model_calls += 1;
    else t.tool_calls += 1;
    if (trace.outcome === "error") t.errors += 1;
    t.input_tokens += trace.input_tokens;
    t.cache_tokens += trace.cache_tokens;
    t.output_tokens += trace.output_tokens;
    t.tokens_used += trace.tokens_used;
    t.total_latency_ms += trace.latency_ms ?? 0;
    if (trace.latency_ms !== null) {
      t.max_latency_ms = Math.max(t.max_latency_ms ?? 0, trace.latency_ms);
    }
  }

  private addCache(trace: TraceRecord, segments: TurnCache["segments"]): void {
    const known = this.cache.get(trace.turn_number);
    const turn: TurnCache = known ?? {
      turn_number: trace.turn_number,
      input_tokens: 0,
      cache_tokens: 0,
      segments: [],
      broken_by: null,
    };
    turn.input_tokens += trace.input_tokens;
    turn.cache_tokens += trace.cache_tokens;
    turn.segments = [...turn.segments, ...segments];
    this.cache.set(trace.turn_number, turn);
  }

  private noteLatency(trace: TraceRecord): void {
    if (trace.latency_ms !== null && trace.latency_ms > this.maxLatency) {
      this.maxLatency = trace.latency_ms;
    }
  }

  invalidate(): void {
    this.rowsCache = null;
  }

  heightOf(row: Row): number {
    if (row.type === "turn" || row.type === "trace") return ROW_HEIGHT;
    return this.measured.get(row.key) ?? PANEL_ESTIMATE;
  }

  /** Record a panel's measured height; returns whether it changed (rows must move). */
  setMeasured(key: string, height: number): boolean {
    const rounded = Math.ceil(height);
    if (rounded <= 0 || this.measured.get(key) === rounded) return false;
    this.measured.set(key, rounded);
    this.invalidate();
    return true;
  }

  /** The rows to show, in order: each turn, then (unless collapsed) its traces and details. */
  rows(): Row[] {
    if (this.rowsCache !== null) return this.rowsCache;
    const rows: Row[] = [];
    const turnNumbers = [...this.turns.keys()].sort((a, b) => a - b);
    for (const number of turnNumbers) {
      const turn = this.turns.get(number);
      if (turn === undefined) continue;
      rows.push({ type: "turn", key: `turn:${number}`, turn });
      if (this.cacheOpen.has(number) && this.cache.has(number)) {
        rows.push({ type: "cache", key: `cache:${number}`, turn });
      }
      if (this.collapsedTurns.has(number)) continue;
      for (const item of turn.items) {
        rows.push({ type: "trace", key: `trace:${item.trace.id}`, item });
        if (this.expanded.has(item.trace.id)) {
          rows.push({ type: "detail", key: `detail:${item.trace.id}`, item });
        }
      }
    }
    const offsets = new Array<number>(rows.length + 1);
    let top = 0;
    rows.forEach((row, i) => {
      offsets[i] = top;
      top += this.heightOf(row);
    });
    offsets[rows.length] = top;
    this.rowsCache = rows;
    this.offsetsCache = offsets;
    return rows;
  }

  /** Top of each row, plus the total height at the end. */
  offsets(): number[] {
    this.rows();
    return this.offsetsCache;
  }

  /** Index of the row at ``y`` pixels from the top. */
  rowAt(y: number): number {
    const offsets = this.offsets();
    let lo = 0;
    let hi = Math.max(0, offsets.length - 2);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((offsets[mid] ?? 0) <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function insertSorted(items: TraceItem[], item: TraceItem): void {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const other = items[mid];
    if (other !== undefined && compareItems(other, item) < 0) lo = mid + 1;
    else hi = mid;
  }
  items.splice(lo, 0, item);
}

/** A turn's summary figures from its loaded traces. */
export function turnFigures(turn: Turn): {
  tools: number;
  tokens: number;
  spanMs: number | null;
  errors: number;
  running: number;
} {
  let tools = 0;
  let tokens = 0;
  let errors = 0;
  let running = 0;
  let start = Infinity;
  let end = -Infinity;
  for (const { trace, running: isRunning } of turn.items) {
    if (trace.kind === "tool") tools += 1;
    tokens += trace.tokens_used;
    if (trace.outcome === "error") errors += 1;
    if (isRunning) running += 1;
    const began = Date.parse(trace.started_at);
    const finished =
      trace.finished_at !== null
        ? Date.parse(trace.finished_at)
        : trace.latency_ms !== null
          ? began + trace.latency_ms
          : NaN;
    if (!Number.isNaN(began)) start = Math.min(start, began);
    if (!Number.isNaN(finished)) end = Math.max(end, finished);
  }
  const spanMs = end >= start && Number.isFinite(start) ? end - start : null;
  return { tools, tokens, spanMs, errors, running };
}
