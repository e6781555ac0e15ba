// The tasks pane's state: the latest frame of every task, their order, and open panels.
import type { TaskUpdate } from "../frames";
import type { ResultReply } from "./protocol";

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

export class TasksState {
  readonly tasks = new Map<string, TaskUpdate>();
  /** This kernel's session (its tasks come live); null before the first list. */
  owner: string | null = null;
  /** The kernel's clock minus the browser's, in ms, from the list reply. */
  clockOffsetMs = 0;
  /** Cancels and retries sent and not yet answered, by task id. */
  readonly busy = new Set<string>();
  panel: Panel | null = null;
  /** Bumped on every change, so a paint can tell whether anything moved. */
  version = 0;
  private ordered: string[] | null = null;

  /** Replace everything with a list from the kernel (a render or a re-render). */
  reset(tasks: readonly TaskUpdate[], owner: string, kernelNow: string): void {
    this.tasks.clear();
    for (const task of tasks) this.tasks.set(task.task_id, task);
    this.owner = owner;
    const now = Date.parse(kernelNow);
    this.clockOffsetMs = Number.isNaN(now) ? 0 : now - Date.now();
    this.ordered = null;
    this.version += 1;
  }

  /** A task as it is now (a frame or a reply): it replaces what was known. */
  upsert(task: TaskUpdate): void {
    const known = this.tasks.get(task.task_id);
    if (known === undefined || known.created_at !== task.created_at) this.ordered = null;
    this.tasks.set(task.task_id, task);
    this.version += 1;
  }

  /** Task ids, newest first (created_at, then id, so equal times keep one order). */
  order(): readonly string[] {
    if (this.ordered === null) {
      const keyed = [...this.tasks.values()].map((t) => ({
        id: t.task_id,
        at: Date.parse(t.created_at),
      }));
      keyed.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      this.ordered = keyed.map((k) => k.id);
    }
    return this.ordered;
  }

  runningCount(): number {
    let n = 0;
    for (const task of this.tasks.values()) if (task.state === "running") n += 1;
    return n;
  }

  anyRunning(): boolean {
    for (const task of this.tasks.values()) if (task.state === "running") return true;
    return false;
  }

  nowMs(): number {
    return Date.now() + this.clockOffsetMs;
  }
}
