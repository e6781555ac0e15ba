// The orchestrator: pick a workflow, fill its arguments, run it and watch it (run pane),
// cancel it, run it again; the project's recent runs. In "run" mode only the run pane of
// one run is shown (%%workflow, %workflow run).
import type { AnyModel, Host } from "@anywidget/types";
import { h } from "../shared/dom";
import { KernelView } from "../shared/view";
import type { WidgetModel, WidgetTraits } from "../shared/widget";
import type { WorkflowInfo } from "./api";
import { button, runEntryRow, setText } from "./dom";
import { ArgsForm, WorkflowPicker } from "./form";
import { RunPane } from "./pane";
import type { OrchestratorKernelMessage, OrchestratorRequest } from "./protocol";
import { RunState, RunsList } from "./state";

/** The orchestrator's synced traits (boonb/widgets/orchestrator.py). */
export interface OrchestratorTraits extends WidgetTraits {
  mode: "orchestrator" | "run";
  run_id: string;
  /** The run a cell waits for, until the cell returns; "" when none. */
  blocking_run: string;
}

const VALIDATE_DELAY_MS = 250;
const TICK_MS = 1000;
/** User-timing marks for benchmarks/bench_orchestrator.py: a paint of the run pane. */
export const PAINT_MEASURE = "boonb-orchestrator-paint";

type Frame = Extract<OrchestratorKernelMessage, { kind: "frames" }>["frames"][number];

export class OrchestratorView extends KernelView<OrchestratorRequest, OrchestratorKernelMessage> {
  private readonly mode: "orchestrator" | "run";
  private readonly traits: AnyModel<OrchestratorTraits>;
  private workflows: WorkflowInfo[] = [];
  private readonly runsList = new RunsList();
  /** Runs opened in this view, by id; frames of this kernel's runs apply to them. */
  private readonly runs = new Map<string, RunState>();
  /** Runs whose open request is in flight: their frames wait, then apply on the snapshot. */
  private readonly opening = new Map<string, Frame[]>();
  private selectedRun: string | null = null;
  private readonly picker: WorkflowPicker | null = null;
  private readonly form: ArgsForm | null = null;
  private readonly runsBox: HTMLElement | null = null;
  private readonly runsRows: HTMLElement | null = null;
  private readonly more: HTMLButtonElement | null = null;
  private readonly pane: RunPane;
  private readonly status: HTMLElement;
  private readonly paneEmpty: HTMLElement;
  private validateTimer: ReturnType<typeof setTimeout> | null = null;
  private tick: ReturnType<typeof setInterval> | null = null;
  private runsDrawn = "";
  private tracesAbort: AbortController | null = null;

  constructor(
    model: WidgetModel,
    el: HTMLElement,
    private readonly host: Host | null,
  ) {
    super(model, "boonb-orchestrator");
    const traits = model as unknown as AnyModel<OrchestratorTraits>;
    this.traits = traits;
    this.mode = traits.get("mode") === "run" ? "run" : "orchestrator";
    this.root.dataset["mode"] = this.mode;
    this.root.dataset["ready"] = "false";
    this.root.dataset["kernel"] = "live";
    const id = `or-${this.requests.viewId}`;
    this.status = h("div", "or-status");
    this.status.setAttribute("role", "status");
    this.pane = new RunPane(id);
    this.pane.el.hidden = true;
    this.paneEmpty = h("div", "or-empty or-pane-empty", "Pick a workflow and press Run, or open a run.");
    if (this.mode === "orchestrator") {
      const head = h("div", "or-header");
      head.append(h("span", "or-heading", "Workflows"), this.status);
      this.picker = new WorkflowPicker(id);
      this.form = new ArgsForm(id);
      const top = h("div", "or-top");
      top.append(this.picker.el, this.form.el);
      this.runsBox = h("section", "or-runs");
      this.runsBox.setAttribute("aria-label", "Recent runs of the project");
      const runsHead = h("div", "or-runs-head");
      runsHead.append(h("span", "or-section-title", "Runs"), button("or-refresh", "Refresh", "refresh-runs"));
      this.runsRows = h("div", "or-runs-list");
      this.more = button("or-more", "Older runs", "more-runs");
      this.more.hidden = true;
      this.runsBox.append(runsHead, this.runsRows, this.more);
      const bottom = h("div", "or-bottom");
      bottom.append(this.runsBox, this.paneEmpty, this.pane.el);
      this.root.append(head, top, bottom);
    } else {
      this.paneEmpty.textContent = "loading the run…";
      this.root.append(this.status, this.paneEmpty, this.pane.el);
    }
    el.append(this.root);

    this.listen(this.root, "click", this.onClick);
    this.listen(this.root, "input", this.onInput);
    this.listen(this.root, "change", this.onInput);
    this.listen(this.root, "keydown", this.onKey);
    this.listen(this.pane.logScroller, "scroll", () => {
      this.pane.noteScroll();
      this.schedule();
    });
    // The cell that waited for the run returned: Cancel is answered again.
    const onBlocking = (): void => this.schedule();
    traits.on("change:blocking_run", onBlocking);
    this.onDestroy(() => {
      traits.off("change:blocking_run", onBlocking);
      this.stopTicking();
      this.tracesAbort?.abort();
      if (this.validateTimer !== null) clearTimeout(this.validateTimer);
    });
    // A (re)rendered view holds nothing: ask for what it shows as it is now.
    if (this.mode === "orchestrator") {
      this.sendUntilAnswered({ kind: "workflows", request_id: this.requests.id("workflows") });
      this.sendUntilAnswered({ kind: "runs", request_id: this.requests.id("runs") });
    }
    const runId = traits.get("run_id");
    if (runId) this.openRun(runId, true);
  }

  private send(message: OrchestratorRequest): void {
    this.requests.send(message);
  }

  // Kernel messages

  protected onMessage(message: OrchestratorKernelMessage): void {
    if (message.kind === "frames") {
      for (const frame of message.frames) this.onFrame(frame);
      return;
    }
    const kind = this.requests.take(message.request_id);
    if (kind === undefined) return;
    switch (message.kind) {
      case "workflows":
        this.workflows = message.workflows;
        this.root.dataset["workflows"] = String(this.workflows.length);
        if (this.form !== null && this.form.selected === null && this.workflows[0] !== undefined) {
          this.select(this.workflows[0].name);
        }
        break;
      case "runs":
        this.runsList.sessionId = message.session_id;
        this.runsList.reset(message.runs, message.next_cursor, message.now, message.appended);
        break;
      case "validate":
        if (this.form?.selected?.name === message.check.workflow) {
          this.form.showProblems(message.check.errors);
        }
        break;
      case "started":
        this.form?.showProblems(message.errors);
        this.pane.busy = false;
        if (message.run_id !== null) {
          this.form?.note("");
          this.openRun(message.run_id);
        }
        break;
      case "cancel":
        this.pane.busy = false;
        break;
      case "open": {
        const runId = message.run.status.run_id;
        this.runsList.clockOffsetMs = Date.parse(message.now) - Date.now() || 0;
        const known = this.runs.get(runId);
        if (known !== undefined && !known.provisional) {
          known.absorb(message.run);
        } else {
          // Frames that came while it was read apply on top (the older ones are skipped).
          const run = RunState.fromDetail(message.run);
          for (const frame of this.opening.get(runId) ?? []) this.applyFrame(run, frame);
          this.runs.set(runId, run);
        }
        this.opening.delete(runId);
        this.root.dataset["ready"] = "true";
        break;
      }
      case "traces":
        this.mountTraces(message.widget, message.chat_id);
        break;
      case "error":
        this.pane.busy = false;
        if (kind === "open" && this.mode === "run") this.paneEmpty.textContent = message.message;
        if (kind === "run" || kind === "validate") this.form?.note("");
        this.showError(message.message);
        break;
    }
    if (this.mode === "orchestrator" && this.workflows.length > 0 && this.runsList.loaded) {
      this.root.dataset["ready"] = "true";
    }
    this.schedule();
  }

  private onFrame(frame: Frame): void {
    if (frame.type === "workflow:status") this.runsList.applyStatus(frame, null);
    // Frames of a run being opened are shown at once (a cell that waits for its run keeps
    // the kernel from answering until the run ends) and kept, to apply on the snapshot.
    const waiting = this.opening.get(frame.run_id);
    waiting?.push(frame);
    let run = this.runs.get(frame.run_id);
    if (run === undefined && waiting !== undefined) {
      run = RunState.provisional(frame.run_id);
      this.runs.set(frame.run_id, run);
    }
    if (run !== undefined) {
      const ended = run.ended;
      this.applyFrame(run, frame);
      // Frames carry no result: read the ended run's detail once more for it.
      if (!ended && run.ended && waiting === undefined) this.refreshRun(frame.run_id);
      this.schedule();
    }
  }

  private refreshRun(runId: string): void {
    this.opening.set(runId, []);
    this.send({ kind: "open", request_id: this.requests.id("open"), run_id: runId });
  }

  private applyFrame(run: RunState, frame: Frame): void {
    switch (frame.type) {
      case "workflow:status":
        run.applyStatus(frame);
        return;
      case "workflow:step":
        run.applyStep(frame);
        return;
      case "workflow:log":
        run.applyLog(frame);
        return;
    }
  }

  private showError(message: string): void {
    this.status.textContent = `error: ${message}`;
    this.status.classList.add("is-error");
  }

  protected onKernelGone(): void {
    this.root.dataset["kernel"] = "gone";
    this.showError("the kernel is gone; run %workflow again in a live kernel");
    this.stopTicking();
    this.schedule();
  }

  // Actions

  private select(name: string): void {
    const workflow = this.workflows.find((w) => w.name === name);
    if (workflow === undefined || this.form === null) return;
    this.form.show(workflow);
    this.validateSoon();
    this.schedule();
  }

  /** Show a run, asking the kernel for it if it is not known yet (``first``: the run a
   * rendered run pane shows, asked for until answered). */
  private openRun(runId: string, first = false): void {
    this.selectedRun = runId;
    this.closeTraces();
    const known = this.runs.get(runId);
    if ((known === undefined || (!known.live && !known.ended)) && !this.opening.has(runId)) {
      this.opening.set(runId, []);
      const id = this.requests.id("open");
      const message: OrchestratorRequest = { kind: "open", request_id: id, run_id: runId };
      if (first) this.sendUntilAnswered(message);
      else this.send(message);
    }
    this.schedule();
  }

  private validateSoon(): void {
    if (this.validateTimer !== null) clearTimeout(this.validateTimer);
    this.validateTimer = setTimeout(() => {
      this.validateTimer = null;
      this.validate();
    }, VALIDATE_DELAY_MS);
  }

  private validate(): void {
    const form = this.form;
    const workflow = form?.selected;
    if (form === null || workflow === null || workflow === undefined) return;
    const args = form.args();
    if (args === null) {
      form.showProblems([]);
      return;
    }
    this.send({ kind: "validate", request_id: this.requests.id("validate"), workflow: workflow.name, args });
  }

  private run(): void {
    const form = this.form;
    const workflow = form?.selected;
    if (form === null || workflow === null || workflow === undefined || this.kernelGone) return;
    const args = form.args();
    if (args === null) {
      form.showProblems([]); // JSON that does not parse: said inline, nothing sent
      return;
    }
    form.note("starting…");
    this.send({ kind: "run", request_id: this.requests.id("run"), workflow: workflow.name, args });
  }

  private readonly onClick = (event: MouseEvent): void => {
    const target = (event.target as HTMLElement | null)?.closest<HTMLElement>("[data-action]");
    if (target === null || target === undefined) return;
    if (target instanceof HTMLButtonElement && target.disabled) return;
    const run = this.selectedRun;
    switch (target.dataset["action"]) {
      case "select":
        this.select(target.dataset["name"] ?? "");
        return;
      case "mode-form":
        this.form?.setMode("form");
        this.validateSoon();
        return;
      case "mode-json":
        this.form?.setMode("json");
        return;
      case "run":
        this.run();
        return;
      case "open":
        this.openRun(target.dataset["runId"] ?? "");
        return;
      case "refresh-runs":
        this.send({ kind: "runs", request_id: this.requests.id("runs") });
        return;
      case "more-runs":
        if (this.runsList.nextCursor !== null) {
          const cursor = this.runsList.nextCursor;
          this.send({ kind: "runs", request_id: this.requests.id("runs"), cursor });
        }
        return;
      case "cancel":
        if (run === null) return;
        this.pane.busy = true;
        this.send({ kind: "cancel", request_id: this.requests.id("cancel"), run_id: run });
        this.schedule();
        return;
      case "rerun":
        if (run === null) return;
        this.pane.busy = true;
        this.send({ kind: "rerun", request_id: this.requests.id("rerun"), run_id: run });
        this.schedule();
        return;
      case "traces": {
        const chatId = target.dataset["chatId"];
        if (chatId === undefined) return;
        this.showTracesLoading(target.dataset["agent"] ?? "");
        this.send({ kind: "traces", request_id: this.requests.id("traces"), chat_id: chatId });
        return;
      }
      case "close-traces":
        this.closeTraces();
        return;
    }
  };

  private readonly onInput = (event: Event): void => {
    const target = event.target as HTMLElement | null;
    if (target === null || this.form === null) return;
    if (target === this.picker?.search) {
      this.schedule();
      return;
    }
    if (target === this.form.json) {
      this.form.readJson();
      this.validateSoon();
      return;
    }
    if (target.classList.contains("or-filter")) {
      this.schedule();
      return;
    }
    if ((target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) && target.dataset["arg"]) {
      this.form.readField(target);
      this.validateSoon();
    }
  };

  private readonly onKey = (event: KeyboardEvent): void => {
    const target = event.target as HTMLElement | null;
    if (target?.classList.contains("or-workflow") && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      this.picker?.move(target, event.key === "ArrowDown" ? 1 : -1);
    } else if (target === this.picker?.search && event.key === "ArrowDown") {
      event.preventDefault();
      this.root.querySelector<HTMLElement>(".or-workflow")?.focus();
    } else if (event.key === "Escape" && !this.pane.tracesBox.hidden) {
      event.preventDefault();
      this.closeTraces();
    }
  };

  // Traces of an agent: the kernel's TraceViewer, rendered inside the pane.

  private showTracesLoading(label: string): void {
    this.closeTraces();
    const box = this.pane.tracesBox;
    const head = h("div", "or-traces-head");
    head.append(h("span", "or-section-title", `Traces — ${label}`), h("span", "or-spacer"));
    const close = button("or-close", "Close", "close-traces");
    close.setAttribute("aria-label", `Close the traces of ${label}`);
    head.append(close);
    box.replaceChildren(head, h("div", "or-traces-box", "loading…"));
    box.hidden = false;
    box.dataset["agent"] = label;
  }

  private mountTraces(ref: string, chatId: string): void {
    const box = this.pane.tracesBox.querySelector<HTMLElement>(".or-traces-box");
    if (box === null) return;
    box.textContent = "";
    box.dataset["chatId"] = chatId;
    if (this.host === null) {
      box.textContent = "This host cannot show a nested widget; open the chat with %traces " + chatId;
      return;
    }
    const abort = new AbortController();
    this.tracesAbort = abort;
    this.host
      .getWidget(ref)
      .then((child) => (abort.signal.aborted ? undefined : child.render({ el: box, signal: abort.signal })))
      .catch((error: unknown) => {
        if (!abort.signal.aborted) box.textContent = `The trace viewer could not be shown: ${String(error)}`;
      });
  }

  private closeTraces(): void {
    this.tracesAbort?.abort();
    this.tracesAbort = null;
    const box = this.pane.tracesBox;
    const agent = box.dataset["agent"];
    box.replaceChildren();
    box.hidden = true;
    delete box.dataset["agent"];
    if (agent !== undefined) {
      this.root.querySelector<HTMLElement>(`.or-traces[data-agent="${CSS.escape(agent)}"]`)?.focus();
    }
  }

  // Painting

  protected paint(): void {
    const began = performance.now();
    this.picker?.paint(this.workflows, this.form?.selected?.name ?? null);
    if (this.form !== null) this.form.runButton.disabled = this.kernelGone || this.form.selected === null;
    this.paintRuns();
    const run = this.selectedRun !== null ? this.runs.get(this.selectedRun) : undefined;
    this.pane.el.hidden = run === undefined;
    this.paneEmpty.hidden = run !== undefined || (this.mode === "run" && this.selectedRun === null);
    if (run !== undefined) {
      const cellWaits = run.runId === this.traits.get("blocking_run");
      this.pane.paint(run, this.runsList.nowMs(), this.kernelGone, cellWaits);
      if (!run.ended && !this.kernelGone) this.startTicking();
      else this.stopTicking();
    }
    if (this.status.classList.contains("is-error") === false) setText(this.status, "");
    performance.measure(PAINT_MEASURE, { start: began, end: performance.now() });
  }

  private paintRuns(): void {
    const rows = this.runsRows;
    if (rows === null || this.more === null) return;
    const key = `${this.runsList.version}:${this.selectedRun ?? ""}`;
    if (key === this.runsDrawn) return;
    this.runsDrawn = key;
    const now = this.runsList.nowMs();
    const entries = this.runsList.entries.map((e) => runEntryRow(e, e.run_id === this.selectedRun, now));
    if (entries.length === 0) entries.push(h("div", "or-empty", "No runs in this project yet."));
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.["runId"];
    rows.replaceChildren(...entries);
    if (focused !== undefined) rows.querySelector<HTMLElement>(`[data-run-id="${CSS.escape(focused)}"]`)?.focus();
    this.more.hidden = this.runsList.nextCursor === null;
  }

  private startTicking(): void {
    if (this.tick !== null) return;
    this.tick = setInterval(() => {
      const run = this.selectedRun !== null ? this.runs.get(this.selectedRun) : undefined;
      if (run !== undefined) this.pane.tick(run, this.runsList.nowMs());
    }, TICK_MS);
  }

  private stopTicking(): void {
    if (this.tick === null) return;
    clearInterval(this.tick);
    this.tick = null;
  }
}
