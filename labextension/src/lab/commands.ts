// The palette's boonb commands, and the ones the sidebar and the layout restorer run.
import type { JupyterFrontEnd } from "@jupyterlab/application";
import { InputDialog, MainAreaWidget, type WidgetTracker, showErrorMessage } from "@jupyterlab/apputils";
import type { ServerConnection } from "@jupyterlab/services";
import type { ReadonlyPartialJSONObject } from "@lumino/coreutils";
import { boonbIcon } from "./icon";
import { CommandIDs, parseId } from "./ids";
import { type PanelArgs, type PanelKind, type ViewPanel, createPanel, panelId } from "./panels";
import { getJson } from "./rest";
import type { BoonbSidebar } from "./sidebar";

export interface CommandContext {
  settings: ServerConnection.ISettings;
  sidebar: BoonbSidebar;
  tracker: WidgetTracker<MainAreaWidget<ViewPanel>>;
}

export function registerCommands(app: JupyterFrontEnd, context: CommandContext): void {
  const { commands, shell } = app;
  const { settings, sidebar, tracker } = context;

  /** Show the panel of `args`: the one already open, else a new one. */
  const open = async (args: PanelArgs): Promise<MainAreaWidget<ViewPanel>> => {
    const id = panelId(args);
    const known = tracker.find((widget) => widget.id === id);
    if (known !== undefined) {
      shell.activateById(known.id);
      return known;
    }
    const widget = createPanel(args, settings);
    await tracker.add(widget);
    shell.add(widget, "main");
    shell.activateById(widget.id);
    return widget;
  };

  const showSidebar = (): void => {
    shell.activateById(sidebar.id);
  };

  commands.addCommand(CommandIDs.openSidebar, {
    label: "Open the boonb Sidebar",
    caption: "The project's chats, background tasks and workflow runs, from every kernel",
    icon: boonbIcon,
    execute: showSidebar,
  });

  commands.addCommand(CommandIDs.openChat, {
    label: (args) => (args["chat_id"] ? "Open the Chat's Traces" : "Open a Chat's Traces by Id…"),
    caption: "Show a chat's trace viewer in the main area",
    icon: boonbIcon,
    execute: async (args) => {
      const given = stringArg(args, "chat_id");
      if (given !== "") {
        const chatId = parseId(given);
        if (chatId === null) return showErrorMessage("Not a chat id", `"${given}" is not a chat id.`);
        return open({ kind: "chat", id: chatId, label: stringArg(args, "label") });
      }
      const chatId = await askChatId(settings);
      return chatId === null ? undefined : open({ kind: "chat", id: chatId });
    },
  });

  commands.addCommand(CommandIDs.openRun, {
    label: "Open the Workflow Run",
    caption: "Show a workflow run's pane in the main area",
    icon: boonbIcon,
    isVisible: (args) => stringArg(args, "run_id") !== "",
    execute: (args) => {
      const runId = parseId(stringArg(args, "run_id"));
      if (runId === null) {
        return showErrorMessage("boonb", "Pick a run in the boonb sidebar's Workflow runs to open it.");
      }
      return open({ kind: "run", id: runId, label: stringArg(args, "label") });
    },
  });

  commands.addCommand(CommandIDs.showTasks, {
    label: "Show Background Tasks",
    caption: "The project's background subagents, from every kernel",
    icon: boonbIcon,
    execute: () => {
      showSidebar();
      sidebar.reveal("tasks");
    },
  });

  commands.addCommand(CommandIDs.openOrchestrator, {
    label: "Open the Orchestrator",
    caption: "The project's workflows and their runs",
    icon: boonbIcon,
    execute: () => open({ kind: "orchestrator", id: "" }),
  });

  commands.addCommand(CommandIDs.restorePanel, {
    label: "Restore a boonb Panel",
    isVisible: () => false,
    execute: (args) => {
      const kind = stringArg(args, "kind");
      if (!isPanelKind(kind)) return undefined;
      return open({ kind, id: stringArg(args, "id"), label: stringArg(args, "label") });
    },
  });
}

/**
 * Ask for a chat id until it is one of this project's chats, or the user cancels (null).
 * A malformed id, or one the project does not have, says so and asks again.
 */
async function askChatId(settings: ServerConnection.ISettings): Promise<string | null> {
  let text = "";
  for (;;) {
    const answer = await InputDialog.getText({
      title: "Open a chat's traces",
      label: "Chat id (from the boonb sidebar, %chats, or an agent's chat_id)",
      placeholder: "0190c3d2-7b1e-7c44-9a5e-3f1c2b8e4d10",
      text,
      okLabel: "Open",
    });
    if (!answer.button.accept || answer.value === null) return null;
    text = answer.value;
    const chatId = parseId(text);
    if (chatId === null) {
      await showErrorMessage(
        "Not a chat id",
        `"${text.trim()}" is not a chat id. A chat id is a UUID such as ` +
          "0190c3d2-7b1e-7c44-9a5e-3f1c2b8e4d10: copy it from the boonb sidebar's Chats, " +
          "or from %chats in a notebook.",
      );
      continue;
    }
    try {
      await getJson(settings, `boonb/api/chats/${chatId}/traces`, { limit: "1" });
      return chatId;
    } catch (error) {
      await showErrorMessage(
        "The chat cannot be opened",
        `${error instanceof Error ? error.message : String(error)}\n` +
          "Check the id against the boonb sidebar's Chats, or %chats in a notebook.",
      );
    }
  }
}

function stringArg(args: ReadonlyPartialJSONObject, name: string): string {
  const value = args[name];
  return typeof value === "string" ? value : "";
}

function isPanelKind(kind: string): kind is PanelKind {
  return kind === "chat" || kind === "run" || kind === "orchestrator";
}
