// The tasks pane's state: the latest frame of every task, the pages shown, their order,
// the header's counts, and open panels.
import type { TaskUpdate } from "../frames";
import type { ListReply, PageCursor, ResultReply } from "./protocol";

/** A state as the pane shows it: `read` (a collected result) shows as completed. */
export type ShownState =
  | "pending"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "interrupted";

export function shownState(task: TaskUpdate): ShownState {
  return task.state === "read" ? "completed" : task.state;
}

/** Whether the task may still change (its elapsed time ticks, it can be cancelled). */
export function isActive(task: TaskUpdate): boolean {
  return task.state === "pending" || task.state === "running";
}

export function canRetry(task: TaskUpdate): boolean {
  return task.state === "failed" || task.state === "cancelled" || task.state === "interrupted";
}

/**
 * How long the task has run, in ms: up to now while it runs, its total once finished, null
 * before it started. ``nowMs`` is the kernel's clock (the browser's plus the offset).
 */
export function durationMs(task: TaskUpdate, nowMs: number): number | null {
  if (task.started_at === null) return null;
  const start = Date.parse(task.started_at);
  const end = task.finished_at !== null ? Date.parse(task.finished_at) : nowMs;
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return Math.max(0, end - start);
}

/** A panel open under the list: a task's result, or its subagent's traces. */
export type Panel =
  | { kind: "result"; taskId: string; status: "loading" }
  | { kind: "result"; taskId: string; status: "loaded"; reply: ResultReply }
  | { kind: "result" | "traces"; taskId: string; status: "failed"; message: string }
  | { kind: "traces"; taskId: string; status: "loading" | "loaded"; widget: string | null };

/**
 * A task's place in the kernel's order (created_at, then id, both descending), as a number
 * and a string: microseconds since the epoch (Date.parse keeps only milliseconds, and a
 * page's cursor must match the kernel's to the microsecond), then the id.
 */
export function sortKey(createdAt: string, id: string): [number, string] {
  const ms = Date.parse(createdAt);
  const fraction = /\.(\d+)/.exec(createdAt)?.[1] ?? "";
  const micros = Number((fraction + "000000").slice(3, 6));
  return [(Number.isNaN(ms) ? 0 : ms) * 1000 + micros, id];
}

/** Whether a task at key ``a`` comes before one at ``b`` (newest first). */
function comesBefore(a: [number, string], b: [number, string]): boolean {
  return a[0] !== b[0] ? a[0] > b[0] : a[1] > b[1];
}

export class TasksState {
  /** Every task known: those of the pages shown, and any a frame brought. */
  readonly tasks = new Map<string, TaskUpdate>();
  /** This kernel's session (its tasks come live); null before the first list. */
  owner: string | null = null;
  /** The kernel's clock minus the browser's, in ms, from the list reply. */
  clockOffsetMs = 0;
  /** Where the pages shown end (the next page starts after it); null when all are shown. */
  cursor: PageCursor | null = null;
  /** Every task and those running, as the kernel counts them (also pages not shown). */
  total = 0;
  running = 0;
  /** Cancels and retries sent and not yet answered, by task id. */
  readonly busy = new Set<string>();
  panel: Panel | null = null;
  /** Bumped on every change, so a paint can tell whether anything moved. */
  version = 0;
  private ordered: string[] | null = null;
  /** The ``seq`` of the latest frame of each task, to tell it from an older page's copy. */
  private readonly frameSeq = new Map<string, number>();
  /** The ``seq`` the counts are as of. */
  private countsSeq = -1;
  /** The highest ``seq`` of any frame so far (-1: none yet). */
  latestFrameSeq = -1;
  private cursorKey: [number, string] | null = null;

  /**
   * A page from the kernel: the first one replaces what was shown, a next one extends it.
   * A task whose frame came after the page was read (a higher ``seq``) keeps that frame.
   */
  addPage(reply: ListReply, first: boolean): void {
    if (first) {
      for (const id of [...this.tasks.keys()]) {
        if ((this.frameSeq.get(id) ?? -1) <= reply.seq) this.tasks.delete(id);
      }
      this.owner = reply.owner;
      const now = Date.parse(reply.now);
      this.clockOffsetMs = Number.isNaN(now) ? 0 : now - Date.now();
    }
    for (const task of reply.tasks) {
      if ((this.frameSeq.get(task.task_id) ?? -1) <= reply.seq) this.tasks.set(task.task_id, task);
    }
    this.cursor = reply.next_cursor;
    this.cursorKey = reply.next_cursor === null ? null : sortKey(reply.next_cursor.created_at, reply.next_cursor.task_id);
    this.setCounts(reply.seq, reply.total, reply.running);
    this.ordered = null;
    this.version += 1;
  }

  /** A frame: the task as it is now, and the counts after it. */
  frame(seq: number, task: TaskUpdate, total: number, running: number): void {
    this.frameSeq.set(task.task_id, seq);
    this.latestFrameSeq = Math.max(this.latestFrameSeq, seq);
    this.upsert(task);
    this.setCounts(seq, total, running);
  }

  /**
   * The task a cancel or retry acted on, as the kernel read it while answering a request
   * sent when ``latestFrameSeq`` was ``sentAt``. A frame of the task since then is at least
   * as new (the kernel sends every change as a frame, and a cancelled task's frame can
   * overtake the reply), so the reply then changes nothing.
   */
  replied(task: TaskUpdate, sentAt: number): void {
    if ((this.frameSeq.get(task.task_id) ?? -1) > sentAt) return;
    this.upsert(task);
  }

  /** A task as it is now (a frame or a reply): it replaces what was known. */
  upsert(task: TaskUpdate): void {
    const known = this.tasks.get(task.task_id);
    if (known === undefined || known.created_at !== task.created_at) this.ordered = null;
    this.tasks.set(task.task_id, task);
    this.version += 1;
  }

  private setCounts(seq: number, total: number, running: number): void {
    if (seq < this.countsSeq) return;
    this.countsSeq = seq;
    this.total = total;
    this.running = running;
  }

  /**
   * The ids of the tasks shown, newest first: the pages loaded, and tasks newer than
   * their end. A frame's task past the end waits for its page, so no row skips ahead.
   */
  order(): readonly string[] {
    if (this.ordered === null) {
      const keyed = [...this.tasks.values()].map((t) => sortKey(t.created_at, t.task_id));
      const end = this.cursorKey;
      const shown = end === null ? keyed : keyed.filter((k) => !comesBefore(end, k));
      shown.sort((a, b) => (comesBefore(a, b) ? -1 : comesBefore(b, a) ? 1 : 0));
      this.ordered = shown.map((k) => k[1]);
    }
    return this.ordered;
  }

  /** Rows the list has: the tasks shown and, while more pages wait, room for them. */
  rows(): number {
    const shown = this.order().length;
    return this.cursor === null ? shown : Math.max(shown + 1, this.total);
  }

  nowMs(): number {
    return Date.now() + this.clockOffsetMs;
  }
}
