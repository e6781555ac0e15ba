// The count of running background tasks, as a badge on the sidebar's tab: the tab renders
// its title's dataset as data-* attributes (Lumino's TabBar), and styles.css draws
// `data-running` over the icon. The caption says it in words for screen readers and hovers.
import type { Widget } from "@lumino/widgets";
import type { ActivityWatcher } from "./activity";

const CAPTION = "boonb: chats, background tasks and workflow runs";

export function showRunningBadge(sidebar: Widget, activity: ActivityWatcher): void {
  activity.onChange((now) => setRunning(sidebar, now.tasks_running));
}

export function setRunning(sidebar: Widget, running: number): void {
  const title = sidebar.title;
  const { running: _old, ...rest } = title.dataset;
  const shown = running > 99 ? "99+" : String(running);
  // A new object each time: Title only re-renders the tab when the dataset object changes.
  title.dataset = running > 0 ? { ...rest, running: shown } : rest;
  title.caption =
    running > 0
      ? `${CAPTION} (${running} background ${running === 1 ? "task" : "tasks"} running)`
      : CAPTION;
}
