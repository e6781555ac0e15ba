// boonb's JupyterLab plugin: the project-wide sidebar (chats, background tasks, workflow
// runs), the main-area panels it opens (a chat's traces, a run's pane, the orchestrator),
// the palette commands, and the layout restorer that brings them back after a reload.
import "../shared/styles.css";
import "../traceviewer/styles.css";
import "../tasks/styles.css";
import "../orchestrator/styles.css";
import "./styles.css";
import {
  ILayoutRestorer,
  type JupyterFrontEnd,
  type JupyterFrontEndPlugin,
} from "@jupyterlab/application";
import { ICommandPalette, type MainAreaWidget, WidgetTracker } from "@jupyterlab/apputils";
import { NotebookActions } from "@jupyterlab/notebook";
import { ServerConnection } from "@jupyterlab/services";
import { ActivityWatcher } from "./activity";
import { registerCommands } from "./commands";
import { CATEGORY, CommandIDs, PLUGIN_ID, SIDEBAR_ID } from "./ids";
import type { ViewPanel } from "./panels";
import { BoonbSidebar } from "./sidebar";
import { showRunningBadge } from "./badge";

/** How long the activity poll goes on after a cell is scheduled or finishes, even while
 * nothing runs: what the cell started reaches the database a moment later. */
const CELL_GRACE_MS = 5_000;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "boonb's side panels: the project's chats, background tasks and workflow runs.",
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate,
};

function activate(
  app: JupyterFrontEnd,
  restorer: ILayoutRestorer | null,
  palette: ICommandPalette | null,
): void {
  const settings = restSettings(app.serviceManager.serverSettings);
  const activity = new ActivityWatcher(settings);
  const tracker = new WidgetTracker<MainAreaWidget<ViewPanel>>({ namespace: "boonb-panels" });
  const sidebar = new BoonbSidebar({
    settings,
    activity,
    openChat: (chat) =>
      void app.commands.execute(CommandIDs.openChat, { chat_id: chat.chat_id, label: chat.title }),
    openRun: (run) =>
      void app.commands.execute(CommandIDs.openRun, { run_id: run.run_id, label: run.workflow }),
  });
  app.shell.add(sidebar, "left", { rank: 850 });
  showRunningBadge(sidebar, activity);

  registerCommands(app, { settings, sidebar, tracker });
  if (palette !== null) {
    for (const command of [
      CommandIDs.openSidebar,
      CommandIDs.openChat,
      CommandIDs.showTasks,
      CommandIDs.openOrchestrator,
    ]) {
      palette.addItem({ command, category: CATEGORY });
    }
  }
  if (restorer !== null) {
    restorer.add(sidebar, SIDEBAR_ID);
    // Every panel comes back through one command, from the arguments it was opened with.
    void restorer.restore(tracker, {
      command: CommandIDs.restorePanel,
      args: (widget) => ({ ...widget.content.args }),
      name: (widget) => widget.id,
    });
  }

  // Something may have started or ended: ask (the watcher polls on while it runs).
  const refresh = (): void => void activity.refresh();
  const afterCell = (): void => void activity.refresh(CELL_GRACE_MS);
  NotebookActions.executionScheduled.connect(afterCell);
  NotebookActions.executed.connect(afterCell);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  void app.restored.then(refresh);
}

/**
 * Lab's server settings for boonb's requests. Lab's default cache mode, "no-store", makes
 * ServerConnection append a cache-busting `?<time>` parameter to every request, which
 * boonb's endpoints refuse (they validate their parameters strictly, 400); "no-cache"
 * adds none and still has the browser check every answer with the server.
 */
function restSettings(base: ServerConnection.ISettings): ServerConnection.ISettings {
  return ServerConnection.makeSettings({ ...base, init: { ...base.init, cache: "no-cache" } });
}

export default [plugin];
