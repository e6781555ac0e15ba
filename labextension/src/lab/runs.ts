// The sidebar's Workflow runs section: the project's runs, newest first, filterable by
// state and searchable by workflow name; a row opens the run's pane in the main area.
import type { ServerConnection } from "@jupyterlab/services";
import { h } from "../shared/dom";
import { formatTokens } from "../shared/format";
import { ago } from "../orchestrator/dom";
import type { ListedRunPage } from "./api";
import { listParams, stateChip } from "./chats";
import type { ListQuery, ListSource, Page } from "./list";
import { getJson } from "./rest";

export type ListedRun = ListedRunPage["runs"][number];

export const RUN_STATES = [
  "pending", "running", "completed", "failed", "cancelled", "interrupted",
] as const; // fmt: skip

export function runsSource(
  settings: ServerConnection.ISettings,
  open: (run: ListedRun) => void,
): ListSource<ListedRun> {
  return {
    name: "runs",
    searchLabel: "Search workflows",
    states: RUN_STATES,
    moreLabel: "Older runs",
    emptyText: "No workflow runs yet: run %workflow run <name> in a notebook.",
    noMatchText: "No run matches.",
    async fetch(query: ListQuery): Promise<Page<ListedRun>> {
      const page = await getJson<ListedRunPage>(settings, "boonb/api/orchestrator/runs", listParams(query));
      return { items: page.runs, next_cursor: page.next_cursor };
    },
    key: (run) => run.run_id,
    row: runRow,
    open,
  };
}

function runRow(run: ListedRun, nowMs: number): HTMLElement {
  const state = run.cancel_requested && !isEnded(run.state) ? "cancelling" : run.state;
  const row = h("div", "boonb-row boonb-run");
  row.dataset["runId"] = run.run_id;
  row.dataset["state"] = run.state;
  const head = h("div", "boonb-row-head");
  const title = h("span", "boonb-row-title", run.workflow);
  title.title = run.workflow;
  head.append(title, stateChip(state));
  const agents = `${run.agents_done}/${run.agents_total} agents`;
  const figures = h("div", "boonb-row-figures");
  const when = ago(run.created_at, nowMs);
  figures.append(
    h("span", "boonb-run-agents", agents),
    h("span", "boonb-run-tokens", `${formatTokens(run.tokens_used)} tok`),
    h("span", "boonb-row-when", when),
  );
  if (run.agents_failed > 0) figures.append(h("span", "boonb-run-failed", `${run.agents_failed} failed`));
  row.append(head, figures);
  row.setAttribute("aria-label", `${run.workflow}, ${state}, ${agents}, ${when}`);
  return row;
}

function isEnded(state: string): boolean {
  return state !== "pending" && state !== "running";
}
