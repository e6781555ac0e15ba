// The trace viewer's view: a virtualised tree fed by pages and live frames.
import {
  createCacheBreakdown,
  createDetail,
  createFooter,
  createTraceRow,
  createTurnRow,
  updateFooter,
  updateTraceRow,
  updateTurnRow,
} from "./dom";
import { h } from "../shared/dom";
import { ImageLoader, KernelImages, Lightbox, type ImageContext } from "../shared/images";
import { KernelView } from "../shared/view";
import type { WidgetModel } from "../shared/widget";
import type { KernelMessage, Request } from "./protocol";
import { ROW_HEIGHT, type Row, TraceState } from "./state";

/** The first page: enough to fill the view, and small so it arrives quickly. */
export const PAGE_LIMIT = 50;
/** Pages once the user scrolls: the kernel's maximum, so a long chat takes fewer round trips. */
export const SCROLL_PAGE_LIMIT = 200;
const MAX_HEIGHT = 440;
/** An open panel (a detail, a cache breakdown) is shown whole up to this height, the tree
 * growing to fit it so the page scrolls rather than a box inside the tree; a taller one
 * scrolls inside itself. Matches the panels' max-height in styles.css. */
const PANEL_MAX_HEIGHT = 640;
const MIN_HEIGHT = ROW_HEIGHT * 2;
const OVERSCAN = 8;
/** Before any scrolling, ask for the next page only when the end is this close (a short view). */
const LOAD_AHEAD_PX = ROW_HEIGHT * 15;
/** Once the user scrolls, keep this much loaded below the viewport, so fast scrolling rarely
 * reaches the end before the next page (a round trip to the kernel) has arrived. */
const SCROLL_LOAD_AHEAD_PX = ROW_HEIGHT * 150;
const CACHE_REFRESH_MS = 400;
/** A burst of live frames without figures waits this long, then asks once for them all. */
const FIGURES_DELAY_MS = 100;
/** Turns one figures request asks for at most (the kernel's ``MAX_TURNS``). */
const MAX_TURNS = 100;
/** User-timing marks, for profiling and benchmarks/bench_browser.py. */
export const RENDER_MARK = "boonb-traceviewer-render";
export const FIRST_ROWS_MARK = "boonb-traceviewer-first-rows";

export class TraceView extends KernelView<Request, KernelMessage> {
  private readonly state = new TraceState();
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly status: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly footer: HTMLElement;
  private readonly rendered = new Map<string, HTMLElement>();
  /** What each rendered panel (detail, cache breakdown) was built from. */
  private readonly panelSource = new WeakMap<HTMLElement, readonly unknown[]>();
  /** Measures open panels, which grow with their content, so the rows below them move. */
  private readonly resizes: ResizeObserver;
  /** Detail requests in flight, by request id: the trace each asks for. */
  private readonly detailRequests = new Map<string, string>();
  /** What each rendered turn or trace row was last drawn from; unchanged rows are not touched,
   * so a scroll frame only writes the rows it adds (no style or layout work for the rest). */
  private readonly drawnFrom = new WeakMap<HTMLElement, readonly unknown[]>();
  private cursor: string | null = null;
  private hasMore = true;
  private pageInFlight = false;
  private pageFailed = false;
  private firstPageDone = false;
  private selected: string | null = null;
  private cacheTimer: ReturnType<typeof setTimeout> | null = null;
  /** Turns whose figures a live frame came without, to ask the kernel for. */
  private readonly figuresWanted = new Set<number>();
  private figuresTimer: ReturnType<typeof setTimeout> | null = null;
  private firstRowsMarked = false;
  private scrolled = false;
  private spacerHeight = -1;
  private scrollerHeight = -1;
  private footerDrawnFrom = "";
  /** Thumbnails of the images in a model call's request (shared/images.ts). */
  private readonly images: ImageContext;

  constructor(model: WidgetModel, el: HTMLElement) {
    super(model, "boonb-traceviewer");
    this.resizes = new ResizeObserver(this.onResize);
    performance.mark(RENDER_MARK, { detail: this.markDetail() });
    const header = h("div", "tv-header");
    header.append(
      h("span", "tv-title", "Traces"),
      h("span", "tv-chat", `chat ${model.get("chat_id").slice(0, 8)}`),
    );
    this.status = h("span", "tv-status", "loading…");
    header.append(this.status);
    this.scroller = h("div", "tv-scroller");
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute("role", "tree");
    this.scroller.setAttribute("aria-label", "Traces by turn");
    this.spacer = h("div", "tv-spacer");
    this.empty = h("div", "tv-empty", "No traces in this chat yet.");
    this.empty.hidden = true;
    this.scroller.append(this.spacer);
    this.footer = createFooter();
    this.root.append(header, this.scroller, this.empty, this.footer);
    el.append(this.root);

    const kernelImages = new KernelImages(model);
    const loader = new ImageLoader(kernelImages.fetch);
    this.images = { loader, lightbox: new Lightbox(loader, this.root) };
    this.onDestroy(() => {
      this.images.lightbox.close();
      kernelImages.dispose();
      loader.dispose();
    });
    this.listen(this.scroller, "scroll", this.onScroll);
    this.listen(this.scroller, "click", this.onClick);
    this.listen(this.scroller, "keydown", this.onKey);
    this.onDestroy(() => {
      if (this.cacheTimer !== null) clearTimeout(this.cacheTimer);
      if (this.figuresTimer !== null) clearTimeout(this.figuresTimer);
      this.resizes.disconnect();
    });
    this.updateRootData();
    // A (re)rendered view holds nothing yet: ask the kernel for the current state.
    this.requestPage();
    this.sendUntilAnswered({ kind: "cache", request_id: this.requests.id("cache") });
  }

  // Kernel messages

  private requestPage(): void {
    if (this.pageInFlight || !this.hasMore || this.pageFailed) return;
    this.pageInFlight = true;
    this.root.dataset["loading"] = "page";
    const page: Request = {
      kind: "page",
      request_id: this.requests.id("page"),
      cursor: this.cursor,
      limit: this.scrolled ? SCROLL_PAGE_LIMIT : PAGE_LIMIT,
    };
    if (this.firstPageDone) this.requests.send(page);
    else this.sendUntilAnswered(page); // the view shows nothing until it comes
  }

  private requestCache(): void {
    this.requests.send({ kind: "cache", request_id: this.requests.id("cache") });
  }

  /** Ask for a trace in full when a page gave only its preview, or for a model call's
   * request as sent; once per trace (a failed one is asked again on the next expand). */
  private requestDetail(traceId: string): void {
    const item = this.state.items.get(traceId);
    if (item === undefined || item.running) return;
    const { trace } = item;
    const needed = trace.kind === "model" || Boolean(trace.input_cut) || Boolean(trace.output_cut);
    const known = this.state.details.get(traceId);
    if (!needed || known?.status === "loading" || known?.status === "loaded") return;
    const requestId = this.requests.id("detail");
    this.detailRequests.set(requestId, traceId);
    this.state.details.set(traceId, { status: "loading" });
    this.requests.send({ kind: "detail", request_id: requestId, trace_id: traceId });
  }

  protected onMessage(message: KernelMessage): void {
    switch (message.kind) {
      case "frame": {
        const completed = this.state.applyFrame(message.frame);
        if (message.turn !== null) this.state.setFigures(message.turn);
        else if (completed !== null) this.requestFiguresSoon(completed.turn_number);
        if (completed !== null) {
          this.state.addToTotals(completed);
          this.refreshCacheSoon();
        }
        this.schedule();
        return;
      }
      case "page":
        if (this.requests.take(message.request_id) === undefined) return; // another view's reply
        for (const trace of message.traces) this.state.upsert(trace, false);
        for (const turn of message.turns) this.state.setFigures(turn);
        this.cursor = message.next_cursor;
        this.hasMore = message.next_cursor !== null;
        this.pageInFlight = false;
        this.firstPageDone = true;
        delete this.root.dataset["loading"];
        this.schedule();
        return;
      case "cache":
        if (this.requests.take(message.request_id) === undefined) return;
        this.state.setCache(message.turns, message.totals);
        this.schedule();
        return;
      case "turns":
        if (this.requests.take(message.request_id) === undefined) return;
        for (const turn of message.turns) this.state.setFigures(turn);
        this.schedule();
        return;
      case "detail": {
        if (this.requests.take(message.request_id) === undefined) return;
        this.detailRequests.delete(message.request_id);
        this.state.details.set(message.trace.id, { status: "loaded", reply: message });
        this.schedule();
        return;
      }
      case "error": {
        const kind = this.requests.take(message.request_id);
        if (kind === undefined) return;
        if (kind === "detail" && message.request_id !== null) {
          const traceId = this.detailRequests.get(message.request_id);
          this.detailRequests.delete(message.request_id);
          if (traceId !== undefined) {
            this.state.details.set(traceId, { status: "failed", message: message.message });
            this.schedule();
          }
          return; // shown in the detail itself
        }
        if (kind === "page") {
          this.pageInFlight = false;
          this.pageFailed = true; // no retry loop; a re-render asks again
          delete this.root.dataset["loading"];
        }
        this.status.textContent = `error: ${message.message}`;
        this.status.classList.add("is-error");
        return;
      }
    }
  }

  /** Ask for a turn's figures: a live frame completed one of its calls, and the kernel had
   * not read the turn's stored calls to count it in. Frames of a burst share one request. */
  private requestFiguresSoon(turn: number): void {
    this.figuresWanted.add(turn);
    this.figuresTimer ??= setTimeout(this.requestFigures, FIGURES_DELAY_MS);
  }

  private readonly requestFigures = (): void => {
    this.figuresTimer = null;
    if (this.closed) return;
    const turns = [...this.figuresWanted].slice(0, MAX_TURNS);
    for (const turn of turns) this.figuresWanted.delete(turn);
    this.requests.send({ kind: "turns", request_id: this.requests.id("turns"), turn_numbers: turns });
    if (this.figuresWanted.size > 0) {
      this.figuresTimer = setTimeout(this.requestFigures, FIGURES_DELAY_MS);
    }
  };

  private refreshCacheSoon(): void {
    if (this.cacheTimer !== null) clearTimeout(this.cacheTimer);
    this.cacheTimer = setTimeout(() => {
      this.cacheTimer = null;
      if (!this.closed) this.requestCache();
    }, CACHE_REFRESH_MS);
  }

  // Painting

  protected paint(): void {
    const state = this.state;
    const rows = state.rows();
    const offsets = state.offsets();
    const total = offsets[rows.length] ?? 0;
    const height = Math.max(MIN_HEIGHT, Math.min(this.maxHeight(rows), total));
    // Read layout before writing anything: a read after a write forces a synchronous layout
    // of the page (all of JupyterLab), once per frame. The scroller has no border or
    // horizontal scrollbar, so its client height is the height set below.
    const top = this.scroller.scrollTop;
    const viewport = height;
    if (total !== this.spacerHeight) {
      this.spacerHeight = total;
      this.spacer.style.height = `${total}px`;
    }
    if (height !== this.scrollerHeight) {
      this.scrollerHeight = height;
      this.scroller.style.height = `${height}px`;
    }
    const empty = this.firstPageDone && rows.length === 0;
    if (this.empty.hidden === empty) this.empty.hidden = !empty;

    const first = Math.max(0, state.rowAt(top) - OVERSCAN);
    const last = Math.min(rows.length - 1, state.rowAt(top + viewport) + OVERSCAN);

    const keep = new Set<string>();
    for (let i = first; i <= last; i++) {
      const row = rows[i];
      if (row === undefined) continue;
      keep.add(row.key);
      const el = this.rowElement(row);
      const rowTop = `${offsets[i] ?? 0}px`;
      if (el.style.top !== rowTop) el.style.top = rowTop;
      const selected = String(row.key === this.selected);
      if (el.getAttribute("aria-selected") !== selected) {
        el.classList.toggle("is-selected", selected === "true");
        el.setAttribute("aria-selected", selected);
      }
      if (el.parentNode !== this.spacer) this.spacer.append(el);
    }
    for (const [key, el] of this.rendered) {
      if (!keep.has(key)) {
        el.remove();
        this.resizes.unobserve(el);
        this.rendered.delete(key);
      }
    }
    const footerFrom = JSON.stringify(state.totals);
    if (footerFrom !== this.footerDrawnFrom) {
      this.footerDrawnFrom = footerFrom;
      updateFooter(this.footer, state.totals);
    }
    this.updateRootData();
    const ahead = this.scrolled ? SCROLL_LOAD_AHEAD_PX : LOAD_AHEAD_PX;
    if (top + viewport >= total - ahead) this.requestPage();
    if (!this.firstRowsMarked && keep.size > 0) this.markFirstRows();
  }

  /** The tree's height cap: taller while a panel is open, so the panel fits whole. */
  private maxHeight(rows: readonly Row[]): number {
    let tallest = 0;
    for (const row of rows) {
      if (row.type === "detail" || row.type === "cache") {
        tallest = Math.max(tallest, Math.min(PANEL_MAX_HEIGHT, this.state.heightOf(row)));
      }
    }
    return Math.max(MAX_HEIGHT, tallest + ROW_HEIGHT * 2);
  }

  private readonly onResize = (entries: ResizeObserverEntry[]): void => {
    let moved = false;
    for (const entry of entries) {
      const el = entry.target as HTMLElement;
      const key = el.dataset["rowKey"];
      if (key === undefined || this.rendered.get(key) !== el) continue;
      const size = entry.borderBoxSize[0];
      const height = size !== undefined ? size.blockSize : el.offsetHeight;
      moved = this.state.setMeasured(key, height) || moved;
    }
    if (moved) this.schedule();
  };

  private markDetail(): { chatId: string; view: string } {
    return { chatId: this.model.get("chat_id"), view: this.requests.viewId };
  }

  /** Mark when the first rows have been painted: the frame after the one that added them. */
  private markFirstRows(): void {
    this.firstRowsMarked = true;
    requestAnimationFrame(() => performance.mark(FIRST_ROWS_MARK, { detail: this.markDetail() }));
  }

  private rowElement(row: Row): HTMLElement {
    const state = this.state;
    let el = this.rendered.get(row.key);
    switch (row.type) {
      case "turn": {
        el ??= createTurnRow();
        const cache = state.cache.get(row.turn.turn);
        const collapsed = state.collapsedTurns.has(row.turn.turn);
        const cacheOpen = state.cacheOpen.has(row.turn.turn);
        // A live model call grows the turn's cache figures in place, hence its fields too.
        const from = [
          row.turn.version,
          collapsed,
          cacheOpen,
          cache,
          cache?.input_tokens,
          cache?.cache_tokens,
          cache?.segments,
          cache?.broken_by,
        ];
        if (this.changed(el, from)) updateTurnRow(el, row.turn, cache, collapsed, cacheOpen);
        break;
      }
      case "cache": {
        const cache = state.cache.get(row.turn.turn);
        const from = [cache, cache?.segments, cache?.input_tokens, cache?.broken_by];
        if (el === undefined || !this.samePanel(el, from)) {
          el?.remove();
          el = cache !== undefined ? createCacheBreakdown(row.turn.turn, cache) : h("div", "tv-panel");
          this.panelSource.set(el, from);
          this.resizes.observe(el);
        }
        break;
      }
      case "trace": {
        el ??= createTraceRow();
        const { item, place, turn } = row;
        const expanded = state.expanded.has(item.trace.id);
        const waterfall = {
          entry: turn.timeline.get(item.trace.id),
          spanMs: turn.figures?.span_ms ?? null,
          maxLatency: state.maxLatency,
        };
        // ``place`` is rebuilt whenever its turn changes (a call joins, so an elbow may
        // stop being the last), and the figures come with the turn.
        const from = [item.trace, item.running, expanded, place, ...Object.values(waterfall)];
        if (this.changed(el, from)) updateTraceRow(el, item, place, expanded, waterfall);
        break;
      }
      case "detail": {
        const id = row.item.trace.id;
        const showMore = state.showMore.has(id);
        const detail = state.details.get(id);
        const from = [row.item.trace, detail, showMore];
        if (el === undefined || !this.samePanel(el, from)) {
          el?.remove();
          el = createDetail(row.item.trace, detail, showMore, this.images);
          el.dataset["showMore"] = String(showMore);
          this.panelSource.set(el, from);
          this.resizes.observe(el);
        }
        break;
      }
    }
    el.dataset["rowKey"] = row.key;
    this.rendered.set(row.key, el);
    return el;
  }

  private samePanel(el: HTMLElement, from: readonly unknown[]): boolean {
    const built = this.panelSource.get(el);
    return built !== undefined && built.every((value, i) => Object.is(value, from[i]));
  }

  /** Whether ``el`` was drawn from other values than ``from``; if so, remember ``from``. */
  private changed(el: HTMLElement, from: readonly unknown[]): boolean {
    const drawn = this.drawnFrom.get(el);
    if (drawn !== undefined && drawn.every((value, i) => Object.is(value, from[i]))) {
      return false;
    }
    this.drawnFrom.set(el, from);
    return true;
  }

  private updateRootData(): void {
    const data = this.root.dataset;
    const set = (key: string, value: string): void => {
      if (data[key] !== value) data[key] = value;
    };
    set("loaded", String(this.state.items.size));
    set("hasMore", String(this.hasMore));
    set("ready", String(this.firstPageDone));
    set("turns", String(this.state.turns.size));
    const totals = this.state.totals;
    const parts = [`${this.state.items.size} loaded`];
    if (totals !== null) parts[0] = `${this.state.items.size} of ${totals.traces} loaded`;
    if (this.pageInFlight) parts.push("loading…");
    const text = parts.join(" · ");
    if (!this.status.classList.contains("is-error") && this.status.textContent !== text) {
      this.status.textContent = text;
    }
  }

  // Interaction

  private readonly onScroll = (): void => {
    this.scrolled = true; // from now on, load ahead in large pages
    this.schedule();
  };

  private readonly onClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement;
    const cacheBar = target.closest<HTMLElement>(".tv-turn .tv-cache");
    if (cacheBar !== null) {
      const turn = Number(cacheBar.closest<HTMLElement>(".tv-turn")?.dataset["turn"]);
      if (!Number.isNaN(turn)) this.toggleCache(turn);
      return;
    }
    if (target.closest(".tv-panel") !== null && target.closest(".tv-show-more") === null) {
      return; // clicks inside a detail (selecting text, opening the tools) stay there
    }
    if (target.closest(".tv-show-more") !== null) {
      const detail = target.closest<HTMLElement>(".tv-detail");
      const id = detail?.dataset["detailFor"];
      if (id !== undefined) this.toggle(this.state.showMore, id);
      return;
    }
    const row = target.closest<HTMLElement>(".tv-turn, .tv-trace");
    const key = row?.dataset["rowKey"];
    if (row === null || row === undefined || key === undefined) return;
    this.selected = key;
    this.setExpanded(key, !this.isExpanded(key));
    this.scroller.focus({ preventScroll: true });
  };

  private readonly onKey = (event: KeyboardEvent): void => {
    const keys = this.selectableKeys();
    if (keys.length === 0) return;
    const index = this.selected === null ? -1 : keys.indexOf(this.selected);
    switch (event.key) {
      case "ArrowDown":
        this.select(keys[Math.min(keys.length - 1, index + 1)] ?? null);
        break;
      case "ArrowUp":
        this.select(keys[Math.max(0, index - 1)] ?? null);
        break;
      case "Home":
        this.select(keys[0] ?? null);
        break;
      case "End":
        this.select(keys[keys.length - 1] ?? null);
        break;
      case "Enter":
      case "ArrowRight":
        if (this.selected !== null) this.setExpanded(this.selected, true);
        break;
      case "ArrowLeft":
        if (this.selected === null) break;
        if (this.isExpanded(this.selected)) this.setExpanded(this.selected, false);
        else if (this.selected.startsWith("trace:")) {
          // Up the tree: to the call that asked for this one, else to the turn.
          const item = this.state.items.get(this.selected.slice("trace:".length));
          if (item === undefined) break;
          const parent = item.trace.parent_id;
          const up = parent !== null ? this.state.items.get(parent) : undefined;
          this.select(
            up !== undefined && up.trace.turn_number === item.trace.turn_number
              ? `trace:${up.trace.id}`
              : `turn:${item.trace.turn_number}`,
          );
        }
        break;
      default:
        return;
    }
    event.preventDefault();
  };

  private selectableKeys(): string[] {
    return this.state
      .rows()
      .filter((row) => row.type === "turn" || row.type === "trace")
      .map((row) => row.key);
  }

  private select(key: string | null): void {
    if (key === null) return;
    this.selected = key;
    this.root.dataset["selected"] = key;
    const rows = this.state.rows();
    const index = rows.findIndex((row) => row.key === key);
    const offsets = this.state.offsets();
    const top = offsets[index] ?? 0;
    const viewport = this.scroller.clientHeight || MAX_HEIGHT;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (top + ROW_HEIGHT > this.scroller.scrollTop + viewport) {
      this.scroller.scrollTop = top + ROW_HEIGHT - viewport;
    }
    this.schedule();
  }

  private isExpanded(key: string): boolean {
    if (key.startsWith("turn:")) {
      return !this.state.collapsedTurns.has(Number(key.slice("turn:".length)));
    }
    return this.state.expanded.has(key.slice("trace:".length));
  }

  private setExpanded(key: string, open: boolean): void {
    if (key.startsWith("turn:")) {
      const turn = Number(key.slice("turn:".length));
      if (open) this.state.collapsedTurns.delete(turn);
      else this.state.collapsedTurns.add(turn);
    } else {
      const id = key.slice("trace:".length);
      if (open) {
        this.state.expanded.add(id);
        this.requestDetail(id);
      } else this.state.expanded.delete(id);
    }
    this.root.dataset["selected"] = key;
    this.state.invalidate();
    this.schedule();
  }

  private toggleCache(turn: number): void {
    if (this.state.cacheOpen.has(turn)) this.state.cacheOpen.delete(turn);
    else this.state.cacheOpen.add(turn);
    this.state.invalidate();
    this.schedule();
  }

  private toggle(set: Set<string>, id: string): void {
    if (set.has(id)) set.delete(id);
    else set.add(id);
    this.state.invalidate();
    this.schedule();
  }
}
