// The tasks pane: the project's background tasks as a virtualised list, live from frames.
import type { Host } from "@anywidget/types";
import { h } from "../shared/dom";
import { KernelView } from "../shared/view";
import type { WidgetModel } from "../shared/widget";
import {
  ENTRY_HEIGHT,
  answerBlock,
  createEntry,
  summaryLine,
  updateDuration,
  updateEntry,
} from "./dom";
import type { TasksKernelMessage, TasksRequest } from "./protocol";
import { type Panel, TasksState, isActive } from "./state";

const MAX_HEIGHT = ENTRY_HEIGHT * 7;
const OVERSCAN = 4;
const TICK_MS = 1000;
/** Tasks in the first page: the kernel's default, more than MAX_HEIGHT shows. */
const FIRST_PAGE = 30;
/** Tasks asked for at least when the user scrolls towards rows not loaded yet. */
const NEXT_PAGE = 100;
/** The most tasks one page may hold (the kernel's limit). */
const MAX_PAGE = 500;
/** User-timing marks, for benchmarks/bench_tasks_pane.py: the view starts, the list reply
 * arrives, and the frame after its entries went into the DOM (each with the view's id). */
export const RENDER_MARK = "boonb-tasks-render";
export const LISTED_MARK = "boonb-tasks-listed";
export const FIRST_PAINT_MARK = "boonb-tasks-first-paint";

type Action = "cancel" | "retry" | "result" | "traces";

export class TasksView extends KernelView<TasksRequest, TasksKernelMessage> {
  private readonly state = new TasksState();
  private readonly count: HTMLElement;
  private readonly runningBadge: HTMLElement;
  private readonly status: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly panelBox: HTMLElement;
  /** Rendered entries by task id, with the task object each was last drawn from. */
  private readonly rendered = new Map<string, { el: HTMLElement; drawn: unknown; busy: boolean }>();
  /** Requests in flight for a task (cancel, retry, result, traces), by request id. */
  private readonly forTask = new Map<string, string>();
  /** The latest frame's ``seq`` when each cancel or retry was sent (see TaskState.replied). */
  private readonly sentAt = new Map<string, number>();
  private tick: ReturnType<typeof setInterval> | null = null;
  private panelDrawn: Panel | null = null;
  private panelUnfolded = false;
  private panelAbort: AbortController | null = null;
  private loadingRow: HTMLElement | null = null;
  private listed = false;
  private firstPaintMarked = false;
  /** The first-page request in flight (a render's), whose reply replaces the list. */
  private firstPageId: string | null = null;
  /** A next-page request is in flight: one at a time, each after the one before. */
  private loadingMore = false;

  constructor(
    model: WidgetModel,
    el: HTMLElement,
    private readonly host: Host | null,
  ) {
    super(model, "boonb-tasks");
    performance.mark(RENDER_MARK, { detail: { view: this.requests.viewId } });
    this.root.dataset["ready"] = "false";
    this.root.dataset["kernel"] = "live";
    const header = h("div", "tk-header");
    this.count = h("span", "tk-count", "Background tasks");
    this.runningBadge = h("span", "tk-running", "0 running");
    this.runningBadge.setAttribute("role", "status");
    this.runningBadge.dataset["count"] = "0";
    this.status = h("span", "tk-status", "loading…");
    // Under an agent's chat (a chat id), the pane shows the subagents that agent spawned.
    const ofChat = model.get("chat_id") !== "";
    const heading = ofChat ? "Subagents" : "Tasks";
    header.append(h("span", "tk-heading", heading), this.runningBadge, this.count, this.status);

    this.scroller = h("div", "tk-scroller");
    this.scroller.setAttribute("role", "list");
    this.scroller.setAttribute("aria-label", ofChat ? "Subagents this agent spawned" : "Background tasks");
    this.spacer = h("div", "tk-spacer");
    this.scroller.append(this.spacer);
    const none = ofChat ? "This agent has spawned no subagents yet." : "No background tasks in this project yet.";
    this.empty = h("div", "tk-empty", none);
    this.empty.hidden = true;
    this.panelBox = h("div", "tk-panel");
    this.panelBox.hidden = true;
    this.root.append(header, this.scroller, this.empty, this.panelBox);
    el.append(this.root);

    this.listen(this.scroller, "scroll", () => this.schedule());
    this.listen(this.scroller, "click", this.onClick);
    this.listen(this.panelBox, "click", this.onClick);
    this.listen(this.root, "keydown", this.onKey);
    this.onDestroy(() => {
      this.stopTicking();
      this.panelAbort?.abort();
    });
    // A (re)rendered view holds nothing yet: ask the kernel for the tasks as they are now,
    // one page that fills the view; the rest comes as the user scrolls towards it.
    this.firstPageId = this.requests.id("list");
    this.sendUntilAnswered({ kind: "list", request_id: this.firstPageId, before: null, limit: FIRST_PAGE });
  }

  // Kernel messages

  protected onMessage(message: TasksKernelMessage): void {
    switch (message.kind) {
      case "frame":
        this.state.frame(message.seq, message.frame, message.total, message.running);
        this.schedule();
        return;
      case "list": {
        if (this.requests.take(message.request_id) === undefined) return;
        const first = message.request_id === this.firstPageId;
        if (first) {
          this.firstPageId = null;
          if (!this.listed) performance.mark(LISTED_MARK, { detail: { view: this.requests.viewId } });
        } else {
          this.loadingMore = false;
        }
        this.state.addPage(message, first);
        this.listed = true;
        this.paintNow(); // the list is what the user waits for: no extra frame before it
        return;
      }
      case "task": {
        const sentAt = this.sentAt.get(message.request_id) ?? -1;
        if (!this.takeFor(message.request_id)) return;
        this.state.replied(message.task, sentAt);
        this.schedule();
        return;
      }
      case "result": {
        if (!this.takeFor(message.request_id)) return;
        if (this.state.panel?.kind === "result" && this.state.panel.taskId === message.task_id) {
          this.state.panel = { kind: "result", taskId: message.task_id, status: "loaded", reply: message };
        }
        this.schedule();
        return;
      }
      case "traces": {
        if (!this.takeFor(message.request_id)) return;
        if (this.state.panel?.kind === "traces" && this.state.panel.taskId === message.task_id) {
          this.state.panel = {
            kind: "traces",
            taskId: message.task_id,
            status: "loaded",
            widget: message.widget,
          };
        }
        this.schedule();
        return;
      }
      case "error": {
        const kind = this.requests.take(message.request_id);
        if (kind === undefined) return;
        if (kind === "list" && message.request_id !== this.firstPageId) this.loadingMore = false;
        const taskId = message.request_id !== null ? this.forTask.get(message.request_id) : undefined;
        if (message.request_id !== null) {
          this.forTask.delete(message.request_id);
          this.sentAt.delete(message.request_id);
        }
        if (taskId !== undefined) this.state.busy.delete(taskId);
        const panel = this.state.panel;
        if ((kind === "result" || kind === "traces") && panel?.taskId === taskId && panel?.kind === kind) {
          this.state.panel = { kind, taskId: panel.taskId, status: "failed", message: message.message };
        } else {
          this.showError(message.message);
        }
        this.state.version += 1;
        this.schedule();
        return;
      }
    }
  }

  /** Take a reply to a request of this view about a task; false if it is another view's. */
  private takeFor(requestId: string): boolean {
    if (this.requests.take(requestId) === undefined) return false;
    const taskId = this.forTask.get(requestId);
    this.forTask.delete(requestId);
    this.sentAt.delete(requestId);
    if (taskId !== undefined) this.state.busy.delete(taskId);
    return true;
  }

  private ask(action: Action, taskId: string): void {
    if (this.kernelGone) return;
    const requestId = this.requests.id(action);
    this.forTask.set(requestId, taskId);
    if (action === "cancel" || action === "retry") {
      this.state.busy.add(taskId);
      this.sentAt.set(requestId, this.state.latestFrameSeq);
    }
    if (action === "result") this.state.panel = { kind: "result", taskId, status: "loading" };
    if (action === "traces") this.state.panel = { kind: "traces", taskId, status: "loading", widget: null };
    this.status.classList.remove("is-error");
    this.requests.send({ kind: action, request_id: requestId, task_id: taskId });
    this.schedule();
  }

  private showError(message: string): void {
    this.status.textContent = `error: ${message}`;
    this.status.classList.add("is-error");
  }

  protected onKernelGone(): void {
    this.root.dataset["kernel"] = "gone";
    this.showError("the kernel is gone; run %tasks again in a live kernel");
    this.stopTicking();
  }

  // Input

  private readonly onClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement | null;
    const button = target?.closest<HTMLButtonElement>("button[data-action]");
    if (button === null || button === undefined || button.disabled) return;
    const action = button.dataset["action"];
    if (action === "close") {
      this.closePanel();
      return;
    }
    const taskId = button.closest<HTMLElement>("[data-task-id]")?.dataset["taskId"];
    if (taskId === undefined) return;
    if (action === "cancel" || action === "retry" || action === "result" || action === "traces") {
      this.ask(action, taskId);
    }
  };

  private readonly onKey = (event: KeyboardEvent): void => {
    if (event.key === "Escape" && this.state.panel !== null) {
      event.preventDefault();
      this.closePanel();
    }
  };

  private closePanel(): void {
    const taskId = this.state.panel?.taskId;
    this.state.panel = null;
    this.paintNow();
    // Give focus back to the entry the panel belonged to, so the keyboard user is not lost.
    if (taskId !== undefined) {
      this.rendered.get(taskId)?.el.querySelector<HTMLButtonElement>("button:not([hidden])")?.focus();
    }
  }

  // Painting

  protected paint(): void {
    const state = this.state;
    const order = state.order();
    const rows = state.rows();
    const running = state.running;
    const total = Math.max(state.total, order.length);
    this.runningBadge.textContent = `${running} running`;
    this.runningBadge.dataset["count"] = String(running);
    this.runningBadge.classList.toggle("is-active", running > 0);
    this.count.textContent = `${total} ${total === 1 ? "task" : "tasks"}`;
    if (this.listed && !this.status.classList.contains("is-error")) this.status.textContent = "";
    this.empty.hidden = !this.listed || rows > 0;
    this.scroller.hidden = rows === 0;
    this.paintEntries(order, rows);
    this.paintPanel();
    if (running > 0 && !this.kernelGone) this.startTicking();
    else this.stopTicking();
    if (this.listed) {
      this.root.dataset["ready"] = "true";
      this.root.dataset["tasks"] = String(total);
      this.root.dataset["loaded"] = String(order.length);
      if (!this.firstPaintMarked) {
        this.firstPaintMarked = true;
        const detail = { view: this.requests.viewId, tasks: total, loaded: order.length };
        requestAnimationFrame(() => performance.mark(FIRST_PAINT_MARK, { detail }));
      }
    }
  }

  private paintEntries(order: readonly string[], rows: number): void {
    const total = rows * ENTRY_HEIGHT;
    const height = `${Math.min(total, MAX_HEIGHT)}px`;
    if (this.scroller.style.height !== height) this.scroller.style.height = height;
    const spacerHeight = `${total}px`;
    if (this.spacer.style.height !== spacerHeight) this.spacer.style.height = spacerHeight;
    const top = this.scroller.scrollTop;
    const viewport = this.scroller.clientHeight || MAX_HEIGHT;
    const first = Math.max(0, Math.floor(top / ENTRY_HEIGHT) - OVERSCAN);
    const last = Math.min(rows - 1, Math.ceil((top + viewport) / ENTRY_HEIGHT) + OVERSCAN);
    this.placeholders(order.length, last);
    this.loadMore(order.length, last);
    const visible = new Set<string>();
    const now = this.state.nowMs();
    for (let i = first; i <= last; i += 1) {
      const id = order[i];
      if (id === undefined) continue;
      const task = this.state.tasks.get(id);
      if (task === undefined) continue;
      visible.add(id);
      let entry = this.rendered.get(id);
      if (entry === undefined) {
        entry = { el: createEntry(), drawn: null, busy: false };
        this.rendered.set(id, entry);
        this.spacer.append(entry.el);
      }
      const busy = this.state.busy.has(id) || this.kernelGone;
      if (entry.drawn !== task || entry.busy !== busy) {
        updateEntry(entry.el, task, now, busy);
        entry.drawn = task;
        entry.busy = busy;
      }
      const rowTop = `${i * ENTRY_HEIGHT}px`;
      if (entry.el.style.top !== rowTop) entry.el.style.top = rowTop;
      entry.el.setAttribute("aria-posinset", String(i + 1));
      entry.el.setAttribute("aria-setsize", String(rows));
    }
    for (const [id, entry] of this.rendered) {
      // Keep an entry whose button has the focus, so tabbing is not lost when it scrolls away.
      if (!visible.has(id) && !entry.el.contains(document.activeElement)) {
        entry.el.remove();
        this.rendered.delete(id);
      }
    }
  }

  /** One "loading…" row standing for the rows from ``loaded`` on that are in view. */
  private placeholders(loaded: number, last: number): void {
    const missing = last >= loaded;
    if (!missing) {
      this.loadingRow?.remove();
      this.loadingRow = null;
      return;
    }
    if (this.loadingRow === null) {
      this.loadingRow = h("div", "tk-loading", "loading more tasks…");
      this.loadingRow.setAttribute("role", "status");
      this.spacer.append(this.loadingRow);
    }
    const top = `${loaded * ENTRY_HEIGHT}px`;
    if (this.loadingRow.style.top !== top) this.loadingRow.style.top = top;
  }

  /** Ask for the next page once rows not loaded yet come into view (one request at a time). */
  private loadMore(loaded: number, last: number): void {
    const cursor = this.state.cursor;
    if (cursor === null || this.loadingMore || this.firstPageId !== null || this.kernelGone) return;
    if (last + OVERSCAN < loaded) return;
    // Enough for what is in view (a jump down the scrollbar included), and a page beyond it.
    const limit = Math.min(MAX_PAGE, Math.max(NEXT_PAGE, last + OVERSCAN - loaded + NEXT_PAGE));
    this.loadingMore = true;
    this.requests.send({ kind: "list", request_id: this.requests.id("list"), before: cursor, limit });
  }

  private paintPanel(): void {
    const panel = this.state.panel;
    if (panel === this.panelDrawn) return;
    const sameTask = this.panelDrawn?.taskId === panel?.taskId && this.panelDrawn?.kind === panel?.kind;
    if (!sameTask) this.panelUnfolded = false;
    this.panelDrawn = panel;
    this.panelAbort?.abort();
    this.panelAbort = null;
    this.panelBox.replaceChildren();
    this.panelBox.hidden = panel === null;
    if (panel === null) {
      for (const key of ["taskId", "kind", "status"]) delete this.panelBox.dataset[key];
      return;
    }
    const task = this.state.tasks.get(panel.taskId);
    this.panelBox.dataset["taskId"] = panel.taskId;
    this.panelBox.dataset["kind"] = panel.kind;
    this.panelBox.dataset["status"] = panel.status;
    const head = h("div", "tk-panel-head");
    const what = panel.kind === "result" ? "Result" : "Traces";
    head.append(h("span", "tk-panel-title", `${what} — ${task?.title ?? panel.taskId.slice(0, 8)}`));
    const close = h("button", "tk-button tk-close", "Close");
    close.type = "button";
    close.dataset["action"] = "close";
    close.setAttribute("aria-label", `Close the ${what.toLowerCase()}`);
    head.append(close);
    this.panelBox.append(head);
    if (panel.status === "failed") {
      this.panelBox.append(h("div", "tk-panel-error", panel.message));
      return;
    }
    if (panel.status === "loading") {
      this.panelBox.append(h("div", "tk-panel-loading", "loading…"));
      return;
    }
    if (panel.kind === "result") {
      const reply = panel.reply;
      const unfold = (): void => {
        this.panelUnfolded = true;
        this.panelDrawn = null;
        this.paintNow();
      };
      this.panelBox.append(
        h("div", "tk-summary", summaryLine(reply)),
        answerBlock(reply.answer, unfold, !this.panelUnfolded),
      );
      return;
    }
    this.mountTraces(panel.widget);
  }

  /** Render the kernel's trace viewer for the subagent's chat inside the panel. */
  private mountTraces(ref: string | null): void {
    const box = h("div", "tk-traces-box");
    this.panelBox.append(box);
    if (ref === null) return;
    if (this.host === null) {
      box.textContent = "This host cannot show a nested widget; open the chat with %traces.";
      return;
    }
    const abort = new AbortController();
    this.panelAbort = abort;
    this.host
      .getWidget(ref)
      .then((child) => (abort.signal.aborted ? undefined : child.render({ el: box, signal: abort.signal })))
      .catch((error: unknown) => {
        if (abort.signal.aborted) return;
        box.textContent = `The trace viewer could not be shown: ${String(error)}`;
      });
  }

  // The ticking clock: elapsed times of running tasks, once a second, rendered entries only.

  private startTicking(): void {
    if (this.tick !== null) return;
    this.tick = setInterval(() => {
      const now = this.state.nowMs();
      for (const [id, entry] of this.rendered) {
        const task = this.state.tasks.get(id);
        if (task !== undefined && isActive(task)) updateDuration(entry.el, task, now);
      }
    }, TICK_MS);
  }

  private stopTicking(): void {
    if (this.tick === null) return;
    clearInterval(this.tick);
    this.tick = null;
  }
}
