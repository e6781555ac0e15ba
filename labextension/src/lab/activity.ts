// What runs in the project, from GET /boonb/api/activity: the sidebar's one cheap poll.
// It polls only while something runs (H2's Poller: 1 s, backing off while the page is
// hidden, honouring 503 Retry-After) and stops when nothing does; refresh() asks once, for
// the moments something may have started: the sidebar shown, the page visible again, a
// notebook cell scheduled or finished (then polling on for a few seconds: see refresh).
import type { ServerConnection } from "@jupyterlab/services";
import type { Activity } from "./api";
import { Poller, getJson } from "./rest";

export type { Activity };

export function anythingRuns(activity: Activity): boolean {
  return (
    activity.chats_running + activity.tasks_running + activity.tasks_pending + activity.runs_running > 0
  );
}

type Listener = (activity: Activity, versionChanged: boolean) => void;

export class ActivityWatcher {
  private last: Activity | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly poller: Poller;
  private asking: Promise<void> | null = null;
  /** Poll on until then even while nothing runs (see refresh). */
  private graceUntil = 0;
  private disposed = false;

  constructor(private readonly settings: ServerConnection.ISettings) {
    this.poller = new Poller({
      tick: () => this.tick(),
      onError: (error) => console.warn("boonb: the activity poll failed", error),
    });
  }

  /** The latest answer, null before the first. */
  get activity(): Activity | null {
    return this.last;
  }

  /** Called on every answer, with whether `version` changed (lists then reload). */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Ask once now; poll on while something runs. Calls that come while one is out share it.
   * With `graceMs`, poll on for that long even while nothing runs: a kernel writes what a
   * cell started a moment after the cell's reply, so the first answer can miss it.
   */
  refresh(graceMs = 0): Promise<void> {
    if (this.disposed) return Promise.resolve();
    this.graceUntil = Math.max(this.graceUntil, Date.now() + graceMs);
    this.asking ??= this.tick()
      .then((live) => {
        if (live) this.poller.start();
      })
      .catch((error: unknown) => console.warn("boonb: the activity poll failed", error))
      .finally(() => {
        this.asking = null;
      });
    return this.asking;
  }

  dispose(): void {
    this.disposed = true;
    this.poller.dispose();
    this.listeners.clear();
  }

  /** One poll: tell the listeners, and whether to poll again (something runs). */
  private async tick(): Promise<boolean> {
    const activity = await getJson<Activity>(this.settings, "boonb/api/activity");
    if (this.disposed) return false;
    const changed = this.last === null || this.last.version !== activity.version;
    this.last = activity;
    for (const listener of [...this.listeners]) listener(activity, changed);
    return anythingRuns(activity) || Date.now() < this.graceUntil;
  }
}
