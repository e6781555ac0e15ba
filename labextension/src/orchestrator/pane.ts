// The run pane: header (state, phase, agents, tokens against the budget, elapsed, cache),
// the tree of phases and agents, the live log stream (only its visible lines in the DOM),
// the result. Painted by the view from a RunState; it keeps only what it drew.
import { h } from "../shared/dom";
import { formatLatency, formatTokens } from "../shared/format";
import {
  LOG_LINE_HEIGHT,
  button,
  createAgentRow,
  resultBlock,
  setText,
  updateAgentDuration,
  updateAgentRow,
} from "./dom";
import type { RunState } from "./state";

const LOG_HEIGHT = LOG_LINE_HEIGHT * 14;
const LOG_OVERSCAN = 10;
/** Within this many pixels of the end, the log follows new lines. */
const FOLLOW_SLACK = LOG_LINE_HEIGHT;

export class RunPane {
  readonly el: HTMLElement;
  private readonly state: HTMLElement;
  private readonly workflow: HTMLElement;
  private readonly phase: HTMLElement;
  private readonly agentsDone: HTMLElement;
  private readonly budget: HTMLElement;
  private readonly budgetFill: HTMLElement;
  private readonly tokens: HTMLElement;
  private readonly elapsed: HTMLElement;
  private readonly cached: HTMLElement;
  private readonly cancel: HTMLButtonElement;
  private readonly cancelHint: HTMLElement;
  private readonly rerun: HTMLButtonElement;
  private readonly error: HTMLElement;
  private readonly tree: HTMLElement;
  readonly tracesBox: HTMLElement;
  private readonly phaseFilter: HTMLSelectElement;
  private readonly agentFilter: HTMLSelectElement;
  private readonly logCount: HTMLElement;
  readonly logScroller: HTMLElement;
  private readonly logSpacer: HTMLElement;
  private readonly resultBox: HTMLElement;
  /** Agent rows by step key, with the version each was drawn at; phase groups by name. */
  private readonly rows = new Map<string, { el: HTMLElement; version: number }>();
  private readonly groups = new Map<string, { el: HTMLElement; head: HTMLElement; body: HTMLElement }>();
  /** Log line elements by line index (of the filtered list). */
  private readonly lines = new Map<number, HTMLElement>();
  private drawn: { run: RunState | null; version: number; logVersion: number; filter: string; top: number } = {
    run: null,
    version: -1,
    logVersion: -1,
    filter: "",
    top: -1,
  };
  private resultDrawn: unknown = undefined;
  private resultFolded = true;
  private filterOptions = "";
  /** The log sticks to its end until the user scrolls up. */
  following = true;
  busy = false;

  constructor(formId: string) {
    this.el = h("section", "or-run");
    this.el.setAttribute("aria-label", "Workflow run");
    const head = h("div", "or-run-head");
    this.state = h("span", "or-state-badge");
    this.state.setAttribute("role", "status");
    this.workflow = h("span", "or-run-title");
    this.phase = h("span", "or-run-phase");
    this.agentsDone = h("span", "or-run-agents");
    this.budget = h("div", "or-budget");
    this.budget.setAttribute("role", "progressbar");
    this.budget.setAttribute("aria-label", "Tokens used of the budget");
    this.budgetFill = h("div", "or-budget-fill");
    this.budget.append(this.budgetFill);
    this.tokens = h("span", "or-run-tokens");
    this.elapsed = h("span", "or-run-elapsed");
    this.cached = h("span", "or-run-cached");
    this.cancel = button("or-cancel", "Cancel", "cancel");
    // While a cell waits for this run, the kernel answers nothing the view asks: a Cancel
    // would only be heard once the run had ended. The kernel interrupt does cancel it.
    this.cancelHint = h("span", "or-cancel-hint", "interrupt the kernel (■) to cancel this run");
    this.cancelHint.title =
      "This cell waits for its run, and the kernel answers this pane only once the cell " +
      "returns. Interrupt the kernel (the ■ button, or I, I) to cancel the run.";
    this.cancelHint.hidden = true;
    this.rerun = button("or-rerun", "Re-run", "rerun");
    const facts = h("div", "or-run-facts");
    facts.append(this.phase, this.agentsDone, this.budget, this.tokens, this.elapsed, this.cached);
    const title = h("div", "or-run-titlebar");
    title.append(this.state, this.workflow, h("span", "or-spacer"), this.cancelHint, this.cancel, this.rerun);
    head.append(title, facts);
    this.error = h("div", "or-run-error");
    this.error.hidden = true;

    this.tree = h("div", "or-tree");
    this.tree.setAttribute("role", "tree");
    this.tree.setAttribute("aria-label", "Phases and agents");
    this.tracesBox = h("div", "or-traces-panel");
    this.tracesBox.hidden = true;

    const logHead = h("div", "or-log-head");
    this.phaseFilter = h("select", "or-filter or-filter-phase");
    this.phaseFilter.id = `${formId}-phase-filter`;
    this.phaseFilter.setAttribute("aria-label", "Show the log lines of one phase");
    this.agentFilter = h("select", "or-filter or-filter-agent");
    this.agentFilter.setAttribute("aria-label", "Show the log lines of one agent");
    this.logCount = h("span", "or-log-count");
    logHead.append(h("span", "or-section-title", "Log"), this.phaseFilter, this.agentFilter, this.logCount);
    this.logScroller = h("div", "or-log");
    this.logScroller.tabIndex = 0;
    this.logScroller.setAttribute("role", "log");
    this.logScroller.setAttribute("aria-label", "Log lines of the run");
    this.logScroller.style.height = `${LOG_HEIGHT}px`;
    this.logSpacer = h("div", "or-log-spacer");
    this.logScroller.append(this.logSpacer);
    // While a run goes, its agents come one by one: the filters' options are filled when
    // the user goes to a filter (or the run ends), not on every new agent.
    for (const select of [this.phaseFilter, this.agentFilter]) {
      select.addEventListener("focus", () => {
        if (this.drawn.run !== null) this.paintFilters(this.drawn.run, true);
      });
    }
    this.resultBox = h("div", "or-result");
    this.resultBox.hidden = true;
    this.el.append(head, this.error, this.tree, this.tracesBox, logHead, this.logScroller, this.resultBox);
  }

  /** The log's filters as chosen: a phase ("" for all) and an agent label ("" for all). */
  get filter(): { phase: string; agent: string } {
    return { phase: this.phaseFilter.value, agent: this.agentFilter.value };
  }

  /** The user scrolled the log: follow the end again only when they are back at it. */
  noteScroll(): void {
    const s = this.logScroller;
    this.following = s.scrollTop + s.clientHeight >= s.scrollHeight - FOLLOW_SLACK;
  }

  /** ``cellWaits``: a cell is waiting for this run (the kernel answers no request until it returns). */
  paint(run: RunState, nowMs: number, kernelGone: boolean, cellWaits = false): void {
    if (this.drawn.run !== run) this.reset(run);
    if (this.drawn.version !== run.version) {
      this.paintHeader(run, nowMs, kernelGone);
      this.paintTree(run, nowMs);
      this.paintFilters(run);
      this.paintResult(run);
      this.drawn.version = run.version;
    }
    this.paintButtons(run, kernelGone, cellWaits);
    this.paintLog(run);
  }

  /** What changes with the clock alone: elapsed times of the run and its running agents. */
  tick(run: RunState, nowMs: number): void {
    this.paintElapsed(run, nowMs);
    for (const [key, row] of this.rows) {
      const agent = run.agents.get(key);
      if (agent !== undefined && agent.state === "running") updateAgentDuration(row.el, agent, nowMs);
    }
  }

  private paintElapsed(run: RunState, nowMs: number): void {
    const elapsed = run.elapsedMs(nowMs);
    setText(this.elapsed, elapsed === null ? "not started" : formatLatency(elapsed));
  }

  private reset(run: RunState): void {
    this.drawn = { run, version: -1, logVersion: -1, filter: "", top: -1 };
    this.rows.clear();
    this.groups.clear();
    this.lines.clear();
    this.tree.replaceChildren();
    this.logSpacer.replaceChildren();
    this.resultDrawn = undefined;
    this.resultFolded = true;
    this.filterOptions = "";
    this.phaseFilter.value = "";
    this.agentFilter.value = "";
    this.following = true;
    this.el.dataset["runId"] = run.runId;
  }

  private paintHeader(run: RunState, nowMs: number, kernelGone: boolean): void {
    const s = run.status;
    this.el.dataset["state"] = s.state;
    this.el.dataset["live"] = String(run.live && !kernelGone);
    this.state.className = `or-state-badge or-state-${s.state}`;
    setText(this.state, s.state);
    setText(this.workflow, s.workflow);
    setText(this.phase, s.phase !== null ? `phase: ${s.phase}` : "");
    this.phase.hidden = s.phase === null;
    setText(this.agentsDone, `${s.agents_done}/${s.agents_total} agents done`);
    const budget = s.budget;
    const used = s.tokens_used;
    const share = budget !== null && budget > 0 ? Math.min(1, used / budget) : 0;
    this.budget.hidden = budget === null;
    this.budgetFill.style.width = `${(share * 100).toFixed(1)}%`;
    this.budget.classList.toggle("is-high", share >= 0.8);
    this.budget.setAttribute("aria-valuenow", String(used));
    this.budget.setAttribute("aria-valuemax", String(budget ?? 0));
    setText(
      this.tokens,
      budget !== null ? `${formatTokens(used)} / ${formatTokens(budget)} tokens` : `${formatTokens(used)} tokens`,
    );
    const cached = s.agents_cached;
    this.cached.hidden = cached === 0;
    setText(
      this.cached,
      cached > 0 ? `${cached}/${s.agents_total} steps cached${run.ended ? "" : " — skipping"}` : "",
    );
    if (run.ended && cached > 0) setText(this.cached, `${cached}/${s.agents_total} steps cached — skipped`);
    // Running agents' durations move with the clock's tick alone (once a second), so a
    // paint of a 200-agent run does not rewrite 200 rows.
    this.paintElapsed(run, nowMs);
    const message = s.error !== null && s.state !== "cancelled" ? s.error : "";
    setText(this.error, message);
    this.error.hidden = message === "";
  }

  private paintButtons(run: RunState, kernelGone: boolean, cellWaits: boolean): void {
    const running = !run.ended;
    // A run of another kernel can be watched, not cancelled, from here.
    const cancellable = running && run.live && !kernelGone;
    this.cancelHint.hidden = !(cancellable && cellWaits);
    this.cancel.hidden = !running || !run.live || cellWaits;
    this.cancel.disabled = this.busy || kernelGone;
    this.rerun.hidden = !run.ended || run.status.workflow === "<cell>";
    this.rerun.disabled = this.busy || kernelGone;
  }

  private paintTree(run: RunState, nowMs: number): void {
    for (const phase of run.phases) {
      let group = this.groups.get(phase.name);
      if (group === undefined) {
        const el = h("div", "or-phase");
        el.dataset["phase"] = phase.name;
        const head = h("div", "or-phase-head");
        head.setAttribute("role", "treeitem");
        head.setAttribute("aria-expanded", "true");
        const body = h("div", "or-phase-body");
        body.setAttribute("role", "group");
        el.append(head, body);
        this.tree.append(el);
        group = { el, head, body };
        this.groups.set(phase.name, group);
      }
      let done = 0;
      for (const key of phase.agents) {
        const agent = run.agents.get(key);
        if (agent === undefined) continue;
        if (agent.state !== "running" && agent.state !== "pending") done += 1;
        let row = this.rows.get(key);
        if (row === undefined) {
          row = { el: createAgentRow(agent.label, key), version: -1 };
          this.rows.set(key, row);
          group.body.append(row.el);
        }
        if (row.version !== agent.version) {
          updateAgentRow(row.el, agent, nowMs);
          row.version = agent.version;
        }
      }
      const name = phase.name === "" ? "(no phase)" : phase.name;
      setText(group.head, `${name} — ${done}/${phase.agents.length} agents`);
      group.el.dataset["current"] = String(phase.name !== "" && phase.name === run.status.phase);
    }
  }

  private paintFilters(run: RunState, now = false): void {
    if (!now && !run.ended && this.filterOptions !== "") return;
    const phases = run.phases.map((p) => p.name).filter((n) => n !== "");
    const labels = run.labels();
    const signature = `${phases.join("\u0000")}\u0001${labels.join("\u0000")}`;
    if (signature === this.filterOptions) return;
    this.filterOptions = signature;
    fill(this.phaseFilter, "all phases", phases);
    fill(this.agentFilter, "all agents", labels);
  }

  private paintResult(run: RunState): void {
    const show = run.status.state === "completed";
    this.resultBox.hidden = !show;
    if (!show || this.resultDrawn === run.result) return;
    this.resultDrawn = run.result;
    const unfold = (): void => {
      this.resultFolded = false;
      this.resultDrawn = undefined;
      this.paintResult(run);
    };
    this.resultBox.replaceChildren(
      h("div", "or-section-title", "Result"),
      resultBlock(run.result, this.resultFolded, unfold),
    );
  }

  private paintLog(run: RunState): void {
    const { phase, agent } = this.filter;
    const filter = `${phase}\u0000${agent}`;
    const lines = run.filteredLogs(phase, agent);
    const filterChanged = filter !== this.drawn.filter;
    const grew = run.logVersion !== this.drawn.logVersion;
    if (filterChanged) {
      for (const el of this.lines.values()) el.remove();
      this.lines.clear();
    }
    const total = lines.length * LOG_LINE_HEIGHT;
    // As tall as its lines, up to LOG_HEIGHT: a short log takes little room.
    const height = `${Math.max(LOG_LINE_HEIGHT * 4, Math.min(total + 2, LOG_HEIGHT))}px`;
    if (this.logScroller.style.height !== height) this.logScroller.style.height = height;
    const spacer = `${total}px`;
    if (this.logSpacer.style.height !== spacer) this.logSpacer.style.height = spacer;
    if ((grew || filterChanged) && this.following) {
      this.logScroller.scrollTop = this.logScroller.scrollHeight;
    }
    const top = this.logScroller.scrollTop;
    if (!grew && !filterChanged && top === this.drawn.top) return;
    this.drawn.logVersion = run.logVersion;
    this.drawn.filter = filter;
    this.drawn.top = top;
    const viewport = this.logScroller.clientHeight || LOG_HEIGHT;
    const first = Math.max(0, Math.floor(top / LOG_LINE_HEIGHT) - LOG_OVERSCAN);
    const last = Math.min(lines.length - 1, Math.ceil((top + viewport) / LOG_LINE_HEIGHT) + LOG_OVERSCAN);
    for (const [i, el] of this.lines) {
      if (i < first || i > last) {
        el.remove();
        this.lines.delete(i);
      }
    }
    for (let i = first; i <= last; i += 1) {
      if (this.lines.has(i)) continue;
      const line = run.logs[lines[i] ?? -1];
      if (line === undefined) continue;
      const el = h("div", line.error ? "or-log-line is-error" : "or-log-line", line.text);
      el.style.top = `${i * LOG_LINE_HEIGHT}px`;
      this.lines.set(i, el);
      this.logSpacer.append(el);
    }
    const dropped = run.logsDropped > 0 ? ` (the first ${run.logsDropped} not kept)` : "";
    const all = run.logs.length;
    const noun = all === 1 ? "line" : "lines";
    setText(
      this.logCount,
      lines.length === all ? `${all} ${noun}${dropped}` : `${lines.length} of ${all} ${noun}${dropped}`,
    );
    this.logScroller.dataset["lines"] = String(lines.length);
  }
}

function fill(select: HTMLSelectElement, all: string, values: readonly string[]): void {
  const chosen = select.value;
  const options = [new Option(all, "")];
  for (const value of values) options.push(new Option(value, value));
  select.replaceChildren(...options);
  select.value = values.includes(chosen) ? chosen : "";
}
