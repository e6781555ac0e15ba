// The boonb sidebar: three collapsible sections (Chats, Background tasks, Workflow runs) of
// the whole project, whichever kernel made them. The lists reload when the project's
// activity `version` changes (ActivityWatcher), and once when the sidebar is shown.
import type { ServerConnection } from "@jupyterlab/services";
import { AccordionPanel } from "@lumino/widgets";
import { SidePanel } from "@jupyterlab/ui-components";
import { Widget } from "@lumino/widgets";
import { TasksView } from "../tasks/view";
import { type Activity, type ActivityWatcher, anythingRuns } from "./activity";
import { type ChatSummary, chatsSource } from "./chats";
import { boonbIcon } from "./icon";
import { SIDEBAR_ID } from "./ids";
import { PagedList } from "./list";
import { restHost, restModel } from "./rest";
import { type ListedRun, runsSource } from "./runs";

/** How often the rows' relative times ("2 min ago") are repainted while the sidebar shows. */
const REPAINT_MS = 30_000;

export type SectionName = "chats" | "tasks" | "runs";

export interface SidebarOptions {
  settings: ServerConnection.ISettings;
  activity: ActivityWatcher;
  openChat(chat: ChatSummary): void;
  openRun(run: ListedRun): void;
}

/** One section of the sidebar: a titled accordion part with stable hooks for tests. */
class Section extends Widget {
  constructor(readonly name: SectionName, label: string) {
    super();
    this.addClass("boonb-sb-section");
    this.addClass(`boonb-sb-${name}`);
    this.node.dataset["section"] = name;
    this.node.setAttribute("aria-label", label);
    this.title.label = label;
  }
}

/** The tasks pane of the whole project, on REST; built again on demand (see refresh). */
class TasksSection extends Section {
  private view: TasksView | null = null;
  private model: { dispose(): void } | null = null;

  constructor(private readonly settings: ServerConnection.ISettings) {
    super("tasks", "Background tasks");
  }

  /** Show the tasks as they are now: the pane polls on its own while a task runs. */
  refresh(): void {
    this.unmount();
    const model = restModel({ serverSettings: this.settings }, "tasks", {});
    // Its cursor was refused (the database replaced or just created): frames may have been
    // missed, so read the tasks anew.
    model.on("rest:reset", () => this.refresh());
    this.model = model;
    this.view = new TasksView(model, this.node, restHost(this.settings));
  }

  get mounted(): boolean {
    return this.view !== null;
  }

  dispose(): void {
    this.unmount();
    super.dispose();
  }

  private unmount(): void {
    this.view?.destroy();
    this.model?.dispose();
    this.view = null;
    this.model = null;
  }
}

class ListSection<Item> extends Section {
  constructor(name: SectionName, label: string, readonly list: PagedList<Item>) {
    super(name, label);
    this.node.append(list.el);
  }

  dispose(): void {
    this.list.dispose();
    super.dispose();
  }
}

export class BoonbSidebar extends SidePanel {
  private readonly chats: ListSection<ChatSummary>;
  private readonly tasks: TasksSection;
  private readonly runs: ListSection<ListedRun>;
  /** The project changed while the sidebar was hidden: reload when it is shown. */
  private stale = true;
  /** Running and pending tasks at the last activity answer. */
  private activeTasks = 0;
  /** The lists and the tasks pane were just read: the next activity answer (asked at the
   * same moment) is no news, so it must not read them all again. */
  private justLoaded = false;
  private repaintTimer: ReturnType<typeof setInterval> | null = null;
  private readonly unwatch: () => void;

  constructor(private readonly options: SidebarOptions) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass("boonb-sidebar");
    this.title.icon = boonbIcon;
    this.title.caption = "boonb: chats, background tasks and workflow runs";
    const heading = new Widget();
    heading.addClass("boonb-sb-heading");
    heading.node.textContent = "boonb";
    this.header.addWidget(heading);

    this.chats = new ListSection("chats", "Chats", new PagedList(chatsSource(options.settings, options.openChat)));
    this.tasks = new TasksSection(options.settings);
    this.runs = new ListSection("runs", "Workflow runs", new PagedList(runsSource(options.settings, options.openRun)));
    this.addWidget(this.chats);
    this.addWidget(this.tasks);
    this.addWidget(this.runs);
    this.unwatch = options.activity.onChange((activity, changed) => this.onActivity(activity, changed));
  }

  /** Open (expand) a section and move the keyboard focus into it. */
  reveal(name: SectionName): void {
    const index = [this.chats, this.tasks, this.runs].findIndex((s) => s.name === name);
    const accordion = this.content as AccordionPanel;
    if (index >= 0) accordion.expand(index);
    const section = accordion.widgets[index];
    section?.node.scrollIntoView({ block: "nearest" });
    section?.node.querySelector<HTMLElement>("input, [tabindex='0'], button")?.focus();
  }

  protected onAfterShow(): void {
    if (this.stale) this.reload();
    void this.options.activity.refresh();
    this.repaintTimer ??= setInterval(() => {
      this.chats.list.repaint();
      this.runs.list.repaint();
    }, REPAINT_MS);
  }

  protected onAfterHide(): void {
    if (this.repaintTimer !== null) clearInterval(this.repaintTimer);
    this.repaintTimer = null;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.unwatch();
    if (this.repaintTimer !== null) clearInterval(this.repaintTimer);
    super.dispose();
  }

  private onActivity(activity: Activity, changed: boolean): void {
    const activeTasks = activity.tasks_running + activity.tasks_pending;
    const tasksStarted = activeTasks > 0 && this.activeTasks === 0;
    this.activeTasks = activeTasks;
    if (this.justLoaded) {
      this.justLoaded = false;
      return;
    }
    if (!this.isVisible) {
      this.stale ||= changed;
      return;
    }
    if (changed) {
      void this.chats.list.reload();
      void this.runs.list.reload();
    }
    // The tasks pane polls on its own while its tasks run, and stops when none does; it
    // is built again (it reads the tasks anew) only when it cannot have seen a change: a
    // task started while it was idle, or the project changed while nothing runs (a task
    // that came and went between two polls).
    if (tasksStarted || (changed && !anythingRuns(activity))) this.tasks.refresh();
  }

  private reload(): void {
    this.stale = false;
    this.justLoaded = true;
    void this.chats.list.reload();
    void this.runs.list.reload();
    this.tasks.refresh();
  }
}
