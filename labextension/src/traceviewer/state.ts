// The view's data: traces by turn, each turn's figures as the kernel projected them, cache
// figures, and the flattened visible rows. Nothing here sums rows: a turn's totals and its
// waterfall come from the kernel (``TurnFigures``, boonb/store/projections.py).
import type { Frame, TraceRecord } from "../frames";
import { timeKey } from "../shared/format";
import type {
  ChatTotals,
  DetailReply,
  PagedTrace,
  TimelineEntry,
  TurnCache,
  TurnFigures,
} from "./protocol";

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
  /** In start order. */
  items: TraceItem[];
  /** Bumped whenever one of its items or its figures is added or replaced, so rows know
   * when to redraw. */
  version: number;
  /** The kernel's figures of the turn over all its stored calls; null until they come. */
  figures: TurnFigures | null;
  /** ``figures.timeline`` by trace id: where each call sits on the turn's waterfall. */
  timeline: Map<string, TimelineEntry>;
  /** The items as a tree (``nested``), and the ``version`` it was built at. */
  nestedAt: number;
  nested: Nested[];
}

/** A call's place in its turn's tree: under the call whose ``parent_id`` it names. */
export interface Nested {
  item: TraceItem;
  /** 0 for a call at the top of its turn (a model call), 1 for a tool call it asked for. */
  depth: number;
  /** Whether it is the last call under its parent (its connector ends here). */
  last: boolean;
  /** Per ancestor level above its own, whether a later sibling of that ancestor follows
   * (a connector line passes through this row at that level). */
  through: readonly boolean[];
}

export type Row =
  | { type: "turn"; key: string; turn: Turn }
  | { type: "cache"; key: string; turn: Turn }
  | { type: "trace"; key: string; item: TraceItem; place: Nested; turn: Turn }
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
    const turn = this.turnOf(trace.turn_number);
    insertSorted(turn.items, item);
    turn.version += 1;
    this.noteLatency(trace);
    this.invalidate();
    return !running;
  }

  private turnOf(number: number): Turn {
    let turn = this.turns.get(number);
    if (turn === undefined) {
      turn = {
        turn: number,
        items: [],
        version: 0,
        figures: null,
        timeline: new Map(),
        nestedAt: -1,
        nested: [],
      };
      this.turns.set(number, turn);
    }
    return turn;
  }

  /** Take the kernel's figures of a turn (from a page, or with a live frame). */
  setFigures(figures: TurnFigures): void {
    const turn = this.turnOf(figures.totals.turn_number);
    // Calls are only ever added, so figures counting fewer calls than those held are
    // older ones (a reply computed before a frame's, delivered after it): keep the newer.
    if (turn.figures !== null && callsOf(figures) < callsOf(turn.figures)) return;
    turn.figures = figures;
    turn.timeline = new Map(figures.timeline.map((entry) => [entry.id, entry]));
    turn.version += 1;
    this.invalidate();
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
      if (turn.nestedAt !== turn.version) {
        turn.nested = nest(turn.items);
        turn.nestedAt = turn.version;
      }
      for (const place of turn.nested) {
        const { item } = place;
        rows.push({ type: "trace", key: `trace:${item.trace.id}`, item, place, turn });
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

/**
 * A turn's calls in tree order: each call followed by the calls under it (its
 * ``parent_id``), siblings in start order. A call whose parent is not in the turn (a model
 * call, or a tool call whose model call is not loaded yet) is at the top. ``items`` are in
 * start order and a call starts after the one that asked for it, so a live call lands
 * under its parent without moving the rows above it.
 */
export function nest(items: readonly TraceItem[]): Nested[] {
  const ids = new Set(items.map((item) => item.trace.id));
  const children = new Map<string | null, TraceItem[]>();
  for (const item of items) {
    const parent = item.trace.parent_id;
    const key = parent !== null && parent !== item.trace.id && ids.has(parent) ? parent : null;
    const siblings = children.get(key);
    if (siblings === undefined) children.set(key, [item]);
    else siblings.push(item);
  }
  const out: Nested[] = [];
  const seen = new Set<string>();
  const visit = (parent: string | null, depth: number, through: readonly boolean[]): void => {
    const kids = children.get(parent) ?? [];
    kids.forEach((item, i) => {
      if (seen.has(item.trace.id)) return; // a parent_id cycle: show each call once
      seen.add(item.trace.id);
      const last = i === kids.length - 1;
      out.push({ item, depth, last, through });
      visit(item.trace.id, depth + 1, depth === 0 ? [] : [...through, !last]);
    });
  };
  visit(null, 0, []);
  // Calls only reachable through a cycle have no top: show them at the top, in order.
  for (const item of items) {
    if (!seen.has(item.trace.id)) out.push({ item, depth: 0, last: true, through: [] });
  }
  return out;
}

function callsOf(figures: TurnFigures): number {
  return figures.totals.model_calls + figures.totals.tool_calls;
}

/** Calls of a turn still running (started, not completed): the view's own state. */
export function runningCalls(turn: Turn): number {
  let running = 0;
  for (const item of turn.items) if (item.running) running += 1;
  return running;
}
