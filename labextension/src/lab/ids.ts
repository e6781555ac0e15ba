// Command ids, widget ids and the ids the extension accepts from a user.

export const PLUGIN_ID = "boonb:plugin";
export const SIDEBAR_ID = "boonb-sidebar";
export const CATEGORY = "boonb";

export namespace CommandIDs {
  export const openSidebar = "boonb:open-sidebar";
  /** With `chat_id`: opens its traces; without: asks for the id. */
  export const openChat = "boonb:open-chat";
  /** With `run_id`: opens its run pane (not in the palette: runs are picked in the sidebar). */
  export const openRun = "boonb:open-run";
  export const showTasks = "boonb:show-tasks";
  export const openOrchestrator = "boonb:open-orchestrator";
  /** The layout restorer's way back to any panel: `{kind, id, label}` (panels.ts PanelArgs). */
  export const restorePanel = "boonb:restore-panel";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A chat or run id as the user typed or pasted it (quotes and spaces around dropped), or null. */
export function parseId(text: string): string | null {
  const id = text.trim().replace(/^["']|["']$/g, "").trim().toLowerCase();
  return UUID.test(id) ? id : null;
}

/** The first 8 characters of an id: how the views show an id in a label. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}
