// A keyset-paged, searchable list of the sidebar (chats, workflow runs): a search box, an
// optional state filter, the rows, "Older …" for the next page, and readable empty and
// error states. What it lists and how a row looks come from its ListSource.
import { h } from "../shared/dom";

/** One page of a list endpoint, as the server answers it (`next_cursor` null on the last). */
export interface Page<Item> {
  items: Item[];
  next_cursor: string | null;
}

export interface ListQuery {
  cursor: string | null;
  limit: number;
  search: string;
  state: string;
}

export interface ListSource<Item> {
  /** The section's name in class names and data attributes: "chats", "runs". */
  name: string;
  /** Placeholder of the search box, e.g. "Search chats by title". */
  searchLabel: string;
  /** The states the filter offers; empty for no filter. */
  states: readonly string[];
  /** "Older chats" */
  moreLabel: string;
  /** What an empty project shows, and what an empty search shows. */
  emptyText: string;
  noMatchText: string;
  fetch(query: ListQuery): Promise<Page<Item>>;
  key(item: Item): string;
  row(item: Item, nowMs: number): HTMLElement;
  /** Clicking (or Enter on) a row. */
  open(item: Item): void;
}

const PAGE = 50;
/** The server's largest page (MAX_LIST_LIMIT, MAX_RUNS_LIMIT): a refresh reloads as many
 * rows as were shown, up to this. */
const MAX_PAGE = 200;
const SEARCH_DELAY_MS = 250;

export class PagedList<Item> {
  readonly el: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly state: HTMLSelectElement | null = null;
  private readonly rows: HTMLElement;
  private readonly message: HTMLElement;
  private readonly more: HTMLButtonElement;
  private items: Item[] = [];
  private nextCursor: string | null = null;
  /** Bumped by every first-page load, so an older answer that arrives late is dropped. */
  private generation = 0;
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private loading = false;

  constructor(private readonly source: ListSource<Item>) {
    this.el = h("div", `boonb-list boonb-list-${source.name}`);
    this.el.dataset["list"] = source.name;
    this.el.dataset["ready"] = "false";
    const tools = h("div", "boonb-list-tools");
    this.search = h("input", "boonb-list-search");
    this.search.type = "search";
    this.search.placeholder = source.searchLabel;
    this.search.setAttribute("aria-label", `${source.searchLabel} of ${source.name}`);
    this.search.maxLength = 200;
    tools.append(this.search);
    if (source.states.length > 0) {
      const state = h("select", "boonb-list-state");
      state.setAttribute("aria-label", `Show ${source.name} in one state`);
      state.append(new Option("any state", ""));
      for (const s of source.states) state.append(new Option(s.replace(/_/g, " "), s));
      state.addEventListener("change", () => void this.reload());
      this.state = state;
      tools.append(state);
    }
    this.rows = h("div", "boonb-list-rows");
    this.rows.setAttribute("role", "list");
    this.rows.setAttribute("aria-label", source.name);
    this.message = h("div", "boonb-list-message");
    this.message.setAttribute("role", "status");
    this.more = h("button", "boonb-list-more jp-Button jp-mod-minimal", source.moreLabel);
    this.more.type = "button";
    this.more.hidden = true;
    this.el.append(tools, this.rows, this.message, this.more);

    this.search.addEventListener("input", () => {
      if (this.searchTimer !== null) clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => {
        this.searchTimer = null;
        void this.reload();
      }, SEARCH_DELAY_MS);
    });
    this.more.addEventListener("click", () => void this.loadMore());
    this.rows.addEventListener("click", (event) => this.openFrom(event.target));
    this.rows.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.openFrom(event.target);
      }
    });
  }

  /** Load the first page again, as many rows as are shown (the filters stay). */
  async reload(): Promise<void> {
    const generation = ++this.generation;
    const limit = Math.min(MAX_PAGE, Math.max(PAGE, this.items.length));
    this.loading = true;
    try {
      const page = await this.source.fetch({ cursor: null, limit, ...this.filters() });
      if (generation !== this.generation) return;
      this.items = page.items;
      this.nextCursor = page.next_cursor;
      this.paint(null);
    } catch (error) {
      if (generation === this.generation) this.paint(error);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  /** Repaint the rows (their relative times) without asking the server. */
  repaint(): void {
    if (!this.loading) this.paint(null);
  }

  dispose(): void {
    if (this.searchTimer !== null) clearTimeout(this.searchTimer);
    this.generation += 1;
  }

  private async loadMore(): Promise<void> {
    const cursor = this.nextCursor;
    if (cursor === null || this.loading) return;
    const generation = this.generation;
    this.loading = true;
    this.more.disabled = true;
    try {
      const page = await this.source.fetch({ cursor, limit: PAGE, ...this.filters() });
      if (generation !== this.generation) return;
      const known = new Set(this.items.map((item) => this.source.key(item)));
      this.items.push(...page.items.filter((item) => !known.has(this.source.key(item))));
      this.nextCursor = page.next_cursor;
      this.paint(null);
    } catch (error) {
      if (generation === this.generation) this.paint(error);
    } finally {
      if (generation === this.generation) this.loading = false;
      this.more.disabled = false;
    }
  }

  private filters(): { search: string; state: string } {
    return { search: this.search.value.trim(), state: this.state?.value ?? "" };
  }

  private openFrom(target: EventTarget | null): void {
    const row = (target as HTMLElement | null)?.closest<HTMLElement>("[data-key]");
    const key = row?.dataset["key"];
    if (key === undefined) return;
    const item = this.items.find((i) => this.source.key(i) === key);
    if (item !== undefined) this.source.open(item);
  }

  private paint(error: unknown): void {
    const now = Date.now();
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.["key"];
    this.rows.replaceChildren(
      ...this.items.map((item) => {
        const row = this.source.row(item, now);
        row.dataset["key"] = this.source.key(item);
        row.setAttribute("role", "listitem");
        row.tabIndex = 0;
        return row;
      }),
    );
    if (focused !== undefined) {
      this.rows.querySelector<HTMLElement>(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    }
    const filtered = this.filters().search !== "" || this.filters().state !== "";
    if (error !== null) {
      this.message.textContent = errorText(error);
      this.message.classList.add("is-error");
    } else {
      this.message.textContent =
        this.items.length > 0 ? "" : filtered ? this.source.noMatchText : this.source.emptyText;
      this.message.classList.remove("is-error");
    }
    this.message.hidden = this.message.textContent === "";
    this.more.hidden = this.nextCursor === null || error !== null;
    this.el.dataset["count"] = String(this.items.length);
    this.el.dataset["ready"] = "true";
  }
}

/** An error as one readable line (the server's messages already say what to do next). */
export function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `Could not load the list: ${message}`;
}
