// The chat's state in the browser: a snapshot from the kernel plus the live frames after it.
import type { JsonValue, TraceRecord } from "../frames";
import type {
  AttachmentRef,
  ChatFrameMessage,
  ChatMessage,
  SnapshotReply,
  ToolCallView,
  TurnSummary,
} from "./protocol";

export type SessionState = SnapshotReply["state"];

export type CallStatus = "pending" | "running" | "done" | "error" | "cancelled";

export interface ToolRun {
  running: boolean;
  outcome: TraceRecord["outcome"] | null;
  output: JsonValue;
  error: string | null;
}

/** The command that resumes a chat in a new kernel: the id as the view's header shows it. */
export function resumeCommand(chatId: string): string {
  return `%agent resume ${chatId.slice(0, 8)}`;
}

/**
 * A message's content as a frame carries it: plain text, or (a user message with images)
 * the JSON of its parts, ``{"type": "text", "text"}`` and ``{"type": "image", "image": ref}``.
 */
export function contentParts(content: string): { text: string; images: AttachmentRef[] } {
  if (!content.startsWith("[{")) return { text: content, images: [] };
  let parts: unknown;
  try {
    parts = JSON.parse(content);
  } catch {
    return { text: content, images: [] };
  }
  if (!Array.isArray(parts)) return { text: content, images: [] };
  const texts: string[] = [];
  const images: AttachmentRef[] = [];
  for (const part of parts as Array<Record<string, unknown>>) {
    if (part?.["type"] === "text" && typeof part["text"] === "string") texts.push(part["text"]);
    else if (part?.["type"] === "image" && isRef(part["image"])) images.push(part["image"]);
    else return { text: content, images: [] }; // not parts after all: show it as it is
  }
  return { text: texts.join("\n"), images };
}

function isRef(value: unknown): value is AttachmentRef {
  if (value === null || typeof value !== "object") return false;
  const ref = value as Record<string, unknown>;
  return (
    typeof ref["sha256"] === "string" &&
    typeof ref["mime"] === "string" &&
    typeof ref["width"] === "number" &&
    typeof ref["height"] === "number"
  );
}

/** What a frame asks of the view beyond repainting. */
export type FrameEffect = "none" | "resync";

function emptyTurn(turn: number): TurnSummary {
  return {
    turn_number: turn,
    started_at: null,
    finished_at: null,
    tool_calls: 0,
    input_tokens: 0,
    cache_tokens: 0,
    output_tokens: 0,
    tokens_used: 0,
    errors: 0,
    cache_broken_by: null,
  };
}

export class ChatState {
  ready = false;
  seq = 0;
  chatId = "";
  title = "";
  state: SessionState = "awaiting_input";
  live = false;
  kernelBlocked: string | null = null;
  /**
   * The kernel this view talked to restarted or stopped: nothing it shows is running any
   * more and nothing can be sent (the widget's comm is gone with the old kernel).
   */
  kernelGone = false;
  sending = false;
  /** The largest image the kernel takes, so a larger one is refused before it is read. */
  maxAttachmentBytes = 0;
  messages: ChatMessage[] = [];
  readonly turns = new Map<number, TurnSummary>();
  readonly streaming = new Map<number, string>();
  readonly restarts = new Set<number>();
  /** Tool results (tool messages) by call id. */
  readonly results = new Map<string, ChatMessage>();
  /** Tool calls seen running or finished through trace frames, by call id. */
  readonly runs = new Map<string, ToolRun>();
  /** Pending calls the snapshot said this kernel is running. */
  readonly runningPending = new Set<string>();
  /** Bumped per turn on every change, so the view rebuilds only what changed. */
  readonly versions = new Map<number, number>();
  timelineVersion = 0;

  /** Replace everything with a snapshot (live frames newer than it are applied again after). */
  applySnapshot(reply: SnapshotReply): void {
    this.ready = true;
    this.seq = reply.seq;
    this.chatId = reply.chat_id;
    this.title = reply.title;
    this.state = reply.state;
    this.live = reply.live;
    this.maxAttachmentBytes = reply.max_attachment_bytes;
    this.kernelBlocked = reply.live ? null : reply.send_blocked;
    this.messages = [...reply.messages].sort((a, b) => a.index - b.index);
    this.results.clear();
    for (const m of this.messages) this.noteResult(m);
    this.turns.clear();
    for (const t of reply.turns) this.turns.set(t.turn_number, { ...t });
    this.streaming.clear();
    if (reply.streaming !== null) {
      this.streaming.set(reply.streaming.turn_number, reply.streaming.text);
    }
    this.restarts.clear();
    for (const t of reply.restarts) this.restarts.add(t);
    this.runningPending.clear();
    for (const call of reply.pending_tool_calls) {
      if (call.running) this.runningPending.add(call.id);
    }
    this.runs.clear();
    for (const turn of this.turnNumbers()) this.bump(turn);
  }

  /** Apply one live frame; frames the snapshot already reflects are skipped. */
  applyFrame(message: ChatFrameMessage): FrameEffect {
    if (message.seq <= this.seq) return "none";
    this.seq = message.seq;
    const frame = message.frame;
    switch (frame.type) {
      case "message:delta": {
        if (frame.channel !== "content") return "none";
        const turn = frame.turn_number;
        if (this.answerOf(turn) !== undefined) return "none";
        this.streaming.set(turn, (this.streaming.get(turn) ?? "") + frame.text);
        this.bump(turn);
        return "none";
      }
      case "message:complete": {
        const m = message.message ?? this.fallbackMessage(frame);
        if (this.messages.some((known) => known.index === m.index)) return "none";
        this.messages.push(m);
        this.messages.sort((a, b) => a.index - b.index);
        this.noteResult(m);
        if (m.restart) {
          this.restarts.add(m.turn_number);
          this.timelineVersion++;
        }
        if (m.role === "assistant") this.streaming.delete(m.turn_number);
        this.ensureTurn(m.turn_number);
        this.bump(m.turn_number);
        return "none";
      }
      case "turn:start": {
        const turn = this.ensureTurn(frame.turn_number);
        turn.started_at ??= frame.started_at;
        this.state = "in_progress";
        this.bump(frame.turn_number);
        return "none";
      }
      case "turn:complete": {
        const turn = this.ensureTurn(frame.turn_number);
        turn.finished_at = frame.finished_at;
        turn.tool_calls = frame.tool_calls;
        turn.input_tokens = frame.input_tokens;
        turn.cache_tokens = frame.cache_tokens;
        turn.output_tokens = frame.output_tokens;
        turn.tokens_used = Math.max(turn.tokens_used, frame.input_tokens + frame.output_tokens);
        this.bump(frame.turn_number);
        return "none";
      }
      case "model_call:complete": {
        const trace = frame.trace;
        const turn = this.ensureTurn(trace.turn_number);
        turn.started_at ??= trace.started_at;
        turn.input_tokens = trace.input_tokens;
        turn.cache_tokens = trace.cache_tokens;
        turn.output_tokens = trace.output_tokens;
        turn.tokens_used = trace.tokens_used;
        if (trace.outcome === "error") turn.errors += 1;
        this.bump(trace.turn_number);
        return "none";
      }
      case "tool_trace:start": {
        if (frame.call_id !== null) {
          this.runs.set(frame.call_id, { running: true, outcome: null, output: null, error: null });
        }
        this.ensureTurn(frame.turn_number);
        this.bump(frame.turn_number);
        return "none";
      }
      case "tool_trace:complete": {
        const trace = frame.trace;
        if (trace.call_id !== null) {
          this.runs.set(trace.call_id, {
            running: false,
            outcome: trace.outcome,
            output: trace.output,
            error: trace.error,
          });
          this.runningPending.delete(trace.call_id);
        }
        if (trace.outcome === "error") this.ensureTurn(trace.turn_number).errors += 1;
        this.bump(trace.turn_number);
        return "none";
      }
      case "session_saved":
        this.state = frame.state;
        this.timelineVersion++;
        // A finished run may have closed dangling calls without frames: ask again.
        return frame.state === "in_progress" ? "none" : "resync";
      case "session_restored":
        return "resync";
      default:
        return "none";
    }
  }

  private fallbackMessage(frame: {
    turn_number: number;
    role: ChatMessage["role"];
    content: string;
    tool_calls: Record<string, JsonValue>[];
  }): ChatMessage {
    const last = this.messages[this.messages.length - 1];
    const calls: ToolCallView[] = frame.tool_calls.map((call) => {
      const fn = call["function"];
      const named = fn !== null && typeof fn === "object" && !Array.isArray(fn) ? fn : {};
      return {
        id: String(call["id"] ?? ""),
        name: String(named["name"] ?? ""),
        arguments: String(named["arguments"] ?? ""),
      };
    });
    const { text, images } = contentParts(frame.content);
    return {
      index: last === undefined ? 0 : last.index + 1,
      role: frame.role,
      turn_number: frame.turn_number,
      content: text,
      images,
      tool_calls: calls,
      tool_call_id: null,
      restart: false,
    };
  }

  private noteResult(m: ChatMessage): void {
    if (m.role === "tool" && m.tool_call_id !== null) this.results.set(m.tool_call_id, m);
  }

  private ensureTurn(turn: number): TurnSummary {
    let found = this.turns.get(turn);
    if (found === undefined && turn > 0) {
      found = emptyTurn(turn);
      this.turns.set(turn, found);
      this.timelineVersion++;
    }
    return found ?? emptyTurn(turn);
  }

  bump(turn: number): void {
    this.versions.set(turn, (this.versions.get(turn) ?? 0) + 1);
    this.timelineVersion++;
  }

  // Reading

  /** Every turn with a trace or a message, in order (turn 0, the system prompt, is left out). */
  turnNumbers(): number[] {
    const all = new Set<number>(this.turns.keys());
    for (const m of this.messages) if (m.role !== "system" && m.turn_number > 0) all.add(m.turn_number);
    for (const t of this.streaming.keys()) all.add(t);
    return [...all].filter((t) => t > 0).sort((a, b) => a - b);
  }

  messagesOf(turn: number): ChatMessage[] {
    return this.messages.filter((m) => m.turn_number === turn && m.role !== "system");
  }

  answerOf(turn: number): ChatMessage | undefined {
    return this.messages.find((m) => m.turn_number === turn && m.role === "assistant");
  }

  summaryOf(turn: number): TurnSummary {
    return this.turns.get(turn) ?? emptyTurn(turn);
  }

  /** Tool calls asked for in a turn (from its answer; the traces' count if larger). */
  toolCount(turn: number): number {
    const asked = this.messagesOf(turn).reduce((n, m) => n + m.tool_calls.length, 0);
    return Math.max(asked, this.summaryOf(turn).tool_calls);
  }

  callStatus(call: ToolCallView): CallStatus {
    const run = this.runs.get(call.id);
    if (this.results.has(call.id)) {
      if (run?.outcome === "error") return "error";
      if (run?.outcome === "cancelled") return "cancelled";
      const text = this.results.get(call.id)?.content ?? "";
      return text.startsWith("Error: ") ? "error" : "done";
    }
    if (run !== undefined && !run.running) {
      return run.outcome === "error" ? "error" : run.outcome === "cancelled" ? "cancelled" : "done";
    }
    if (run?.running === true || this.runningPending.has(call.id)) return "running";
    return "pending";
  }

  /** Calls asked for that have no result yet. */
  unanswered(): ToolCallView[] {
    const out: ToolCallView[] = [];
    for (const m of this.messages) {
      for (const call of m.tool_calls) if (!this.results.has(call.id)) out.push(call);
    }
    return out;
  }

  activeTurn(): number | null {
    const turns = this.turnNumbers();
    return turns.length === 0 ? null : (turns[turns.length - 1] ?? null);
  }

  running(): boolean {
    return this.state === "in_progress" && !this.kernelGone;
  }

  /** Why a follow-up cannot be sent now, or null when it can. */
  sendBlocked(): string | null {
    if (this.kernelGone) return `the kernel restarted; resume this chat: ${resumeCommand(this.chatId)}`;
    if (!this.ready) return "loading…";
    if (!this.live) return this.kernelBlocked ?? "this chat is not running in this kernel";
    if (this.sending) return "sending…";
    if (this.running()) return "the agent is running; wait for its answer";
    if (this.unanswered().length > 0) return "tool calls are pending; carry on with %agent resume";
    return null;
  }
}
