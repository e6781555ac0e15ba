// Messages between the view and the kernel; mirrors boonb/widgets/protocol.py.
import type { CacheSegment, Frame, TraceRecord } from "../frames";
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

export type Request = PageRequest | CacheRequest;

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
  traces: TraceRecord[];
  next_cursor: string | null;
}

export interface CacheReply {
  kind: "cache";
  request_id: string;
  turns: TurnCache[];
  totals: ChatTotals;
}

export interface FrameMessage {
  kind: "frame";
  frame: Frame;
}

export type KernelMessage = PageReply | CacheReply | ErrorReply | FrameMessage;

/** The part of anywidget's model the view uses. */
export type WidgetModel = SharedWidgetModel<Request, KernelMessage>;
