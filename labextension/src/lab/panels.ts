// Main-area panels: a chat's trace viewer, a workflow run's pane, the orchestrator. Each
// hosts the same view a cell's widget shows, fed by REST (H2's restModel) instead of a
// kernel comm, and tears it down (view and model: its polling stops) when closed.
import { MainAreaWidget } from "@jupyterlab/apputils";
import type { ServerConnection } from "@jupyterlab/services";
import { Widget } from "@lumino/widgets";
import { OrchestratorView } from "../orchestrator/view";
import type { Destroyable } from "../shared/widget";
import { TraceView } from "../traceviewer/view";
import { boonbIcon } from "./icon";
import { shortId } from "./ids";
import { restHost, restModel } from "./rest";

export type PanelKind = "chat" | "run" | "orchestrator";

/** What a panel shows; also what the layout restorer stores to open it again. */
export interface PanelArgs {
  kind: PanelKind;
  /** chat: the chat's id; run: the run's id; orchestrator: "". */
  id: string;
  /** The tab's label (a chat's title, a run's workflow); optional. */
  label?: string;
}

/** A Lumino widget whose node hosts a boonb view, built on first attach. */
export class ViewPanel extends Widget {
  private view: Destroyable | null = null;
  private model: { dispose(): void } | null = null;

  constructor(
    readonly args: PanelArgs,
    private readonly settings: ServerConnection.ISettings,
  ) {
    super();
    this.addClass("boonb-lab-panel");
    this.node.dataset["panel"] = args.kind;
    if (args.id !== "") this.node.dataset[args.kind === "chat" ? "chatId" : "runId"] = args.id;
    this.node.setAttribute("aria-label", panelTitle(args));
  }

  protected onAfterAttach(): void {
    if (this.view === null) this.build();
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.unmount();
    super.dispose();
  }

  private build(): void {
    const app = { serverSettings: this.settings };
    const { kind, id } = this.args;
    const model =
      kind === "chat"
        ? restModel(app, "traceviewer", { chat_id: id })
        : restModel(app, "orchestrator", { run_id: kind === "run" ? id : null });
    // Its cursor was refused (the database replaced or just created): frames may have been
    // missed, so show the view afresh.
    model.on("rest:reset", () => {
      this.unmount();
      this.build();
    });
    this.model = model;
    this.view =
      kind === "chat" ? new TraceView(model, this.node) : new OrchestratorView(model, this.node, restHost(this.settings));
  }

  private unmount(): void {
    this.view?.destroy();
    this.model?.dispose();
    this.view = null;
    this.model = null;
  }
}

/** The main-area widget's id: opening the same chat or run again finds it. */
export function panelId(args: PanelArgs): string {
  return args.kind === "orchestrator" ? "boonb-orchestrator" : `boonb-${args.kind}-${args.id}`;
}

export function panelTitle(args: PanelArgs): string {
  switch (args.kind) {
    case "chat":
      return `Traces: ${args.label || `chat ${shortId(args.id)}`}`;
    case "run":
      return `Run: ${args.label || shortId(args.id)}`;
    case "orchestrator":
      return "Orchestrator";
  }
}

export function createPanel(args: PanelArgs, settings: ServerConnection.ISettings): MainAreaWidget<ViewPanel> {
  const content = new ViewPanel(args, settings);
  const widget = new MainAreaWidget({ content });
  widget.id = panelId(args);
  widget.addClass("boonb-lab-main");
  widget.title.label = panelTitle(args);
  widget.title.caption =
    args.kind === "chat"
      ? `The traces of chat ${args.id}`
      : args.kind === "run"
        ? `Workflow run ${args.id}`
        : "boonb's orchestrator: the project's workflows and runs";
  widget.title.icon = boonbIcon;
  widget.title.closable = true;
  return widget;
}
