// Messages between the view and the kernel; mirrors boonb/widgets/protocol.py.
import type { CacheSegment, Frame, JsonValue, TraceRecord } from "../frames";
import type { ErrorReply, WidgetModel as SharedWidgetModel } from "../shared/widget";

export interface PageRequest {
  kind: "page";
  request_id: string;
  cursor: string | null;
  limit: number;
}

export interface CacheRequest {
  kind: "cache";
  request_id: string;
}

/** One trace in full, asked for when the user expands it. */
export interface DetailRequest {
  kind: "detail";
  request_id: string;
  trace_id: string;
}

export type Request = PageRequest | CacheRequest | DetailRequest;

/** A trace's input or output too large for a page: its size and its start. */
export interface CutValue {
  /** Size of the whole value as stored (its JSON text, UTF-8). */
  bytes: number;
  /** "string": preview is the start of the string; "json": of the value's JSON text. */
  kind: "string" | "json";
  preview: string;
}

/** A trace as a page carries it; a cut field's value is null, its preview in ``*_cut``.
 * Live frames carry whole traces, without these fields. */
export interface PagedTrace extends TraceRecord {
  input_cut?: CutValue | null;
  output_cut?: CutValue | null;
}

/** A model call's request as it was sent, rebuilt from the stored chat. */
export interface SentRequest {
  model: string | null;
  messages: JsonValue[];
  /** The tool schemas offered; null when none were offered or they were not recorded. */
  tools: JsonValue[] | null;
  /** Where the rebuilt request may differ from what was sent, and why. */
  notes: string[];
}

export interface TurnCache {
  turn_number: number;
  /** Prompt tokens, cache-read tokens included. */
  input_tokens: number;
  /** Prompt tokens read from cache. */
  cache_tokens: number;
  segments: CacheSegment[];
  /** The first already-sent segment that had changed, if any. */
  broken_by: string | null;
}

export interface ChatTotals {
  traces: number;
  model_calls: number;
  tool_calls: number;
  errors: number;
  input_tokens: number;
  cache_tokens: number;
  output_tokens: number;
  tokens_used: number;
  total_latency_ms: number;
  max_latency_ms: number | null;
}

export interface PageReply {
  kind: "page";
  request_id: string;
  traces: PagedTrace[];
  next_cursor: string | null;
}

export interface CacheReply {
  kind: "cache";
  request_id: string;
  turns: TurnCache[];
  totals: ChatTotals;
}

export interface DetailReply {
  kind: "detail";
  request_id: string;
  trace: TraceRecord;
  /** A model call's request as it was sent; null for a tool call. */
  request: SentRequest | null;
}

export interface FrameMessage {
  kind: "frame";
  frame: Frame;
}

export type KernelMessage = PageReply | CacheReply | DetailReply | ErrorReply | FrameMessage;

/** The part of anywidget's model the view uses. */
export type WidgetModel = SharedWidgetModel<Request, KernelMessage>;
