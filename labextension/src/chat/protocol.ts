// Messages between the chat view and the kernel; mirrors boonb/widgets/chat_protocol.py.
import type { Frame, SessionRestored } from "../frames";
import type { ErrorReply, WidgetModel as SharedWidgetModel } from "../shared/widget";

export type SessionState = SessionRestored["state"];

export interface SnapshotRequest {
  kind: "snapshot";
  request_id: string;
}

export interface SendRequest {
  kind: "send";
  request_id: string;
  text: string;
}

export type Request = SnapshotRequest | SendRequest;

export interface ToolCallView {
  id: string;
  name: string;
  /** The arguments as the model sent them (JSON text, usually). */
  arguments: string;
}

export interface ChatMessage {
  /** Position in the agent's history (0 is the system prompt). */
  index: number;
  role: "system" | "user" | "assistant" | "tool";
  /** The turn it belongs to: a user message belongs to the turn it starts. */
  turn_number: number;
  content: string;
  tool_calls: ToolCallView[];
  tool_call_id: string | null;
  /** The note boonb adds when a session is resumed after a kernel restart. */
  restart: boolean;
}

export interface PendingToolCall {
  id: string;
  name: string;
  arguments: string;
  running: boolean;
}

/** One turn of the timeline; input_tokens includes the cache-read cache_tokens. */
export interface TurnSummary {
  turn_number: number;
  started_at: string | null;
  finished_at: string | null;
  tool_calls: number;
  input_tokens: number;
  cache_tokens: number;
  output_tokens: number;
  tokens_used: number;
  errors: number;
  cache_broken_by: string | null;
}

export interface StreamingText {
  turn_number: number;
  text: string;
}

export interface SnapshotReply {
  kind: "snapshot";
  request_id: string;
  /** The last live frame this reply already reflects. */
  seq: number;
  chat_id: string;
  live: boolean;
  can_send: boolean;
  send_blocked: string | null;
  state: SessionState;
  phase: string;
  title: string;
  turn_number: number;
  messages: ChatMessage[];
  turns: TurnSummary[];
  pending_tool_calls: PendingToolCall[];
  restarts: number[];
  streaming: StreamingText | null;
  restored: SessionRestored | null;
}

export interface SendReply {
  kind: "send";
  request_id: string;
  turn_number: number;
}

export interface FrameMessage {
  kind: "frame";
  seq: number;
  frame: Frame;
  message: ChatMessage | null;
}

export type KernelMessage = SnapshotReply | SendReply | ErrorReply | FrameMessage;

/**
 * The part of anywidget's model the view uses. Besides the custom messages, the view
 * listens for `comm_live_update`: @jupyter-widgets' manager sets every model's
 * `comm_live` to false when the kernel restarts (its `disconnect()`), which the model
 * announces with that event. The comm is not closed then, so `comm:close` never comes,
 * and anywidget's model proxy passes any event name through to the model.
 */
export interface WidgetModel extends SharedWidgetModel<Request, KernelMessage> {
  on(event: "msg:custom", callback: (message: KernelMessage) => void): void;
  on(event: "comm_live_update", callback: () => void): void;
  off(event: "msg:custom", callback: (message: KernelMessage) => void): void;
  off(event: "comm_live_update", callback: () => void): void;
}
