// The side panels' REST plumbing: the cell views (TraceView, TasksView, OrchestratorView)
// run unchanged on a stand-in for anywidget's model whose requests go to the server
// (POST /boonb/api/views/{view}) and whose live frames are polled (GET .../frames) while
// anything they show runs; a host that renders a chat's trace viewer inside them; the GET
// helper every list uses; and the poller (1 s while live, doubling to 30 s while the page
// is hidden, back to 1 s when it is shown, a 503's Retry-After honoured).
import type { Host, ResolvedWidget } from "@anywidget/types";
import { URLExt } from "@jupyterlab/coreutils";
import { ServerConnection } from "@jupyterlab/services";
import type { ImageRef } from "../shared/images";
import type { WidgetModel } from "../shared/widget";
import { TraceView } from "../traceviewer/view";
import type { ViewFrames, ViewReplies } from "./api";

export type ViewName = "traceviewer" | "tasks" | "orchestrator";

/** What a panel's view shows: a chat (traceviewer), the project (tasks), a run or all runs. */
export interface RestTarget {
  chat_id?: string;
  run_id?: string | null;
}

/** Polling while something runs. */
export const POLL_MS = 1_000;
/** The longest wait between polls: a hidden page's, or after repeated errors. */
export const MAX_POLL_MS = 30_000;
/** A 503 (another process holds the database) is tried again this many times, then thrown. */
const RETRIES_503 = 3;
/** When a 503 comes without a Retry-After. */
const DEFAULT_RETRY_S = 2;
const API = "boonb/api";

/** An answer other than 2xx: the server's ``{"error": {"type", "message"}}`` when it sent one. */
export class RestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string,
    /** Seconds to wait before asking again (a 503's Retry-After), null without one. */
    readonly retryAfterS: number | null,
  ) {
    super(message);
    this.name = "RestError";
  }
}

/** GET a JSON answer; ``path`` is under the server's base URL (e.g. ``boonb/api/chats``). */
export async function getJson<T>(
  settings: ServerConnection.ISettings,
  path: string,
  query?: Record<string, string>,
  signal?: AbortSignal,
): Promise<T> {
  const response = await request(settings, path, { method: "GET", signal: signal ?? null }, query);
  return (await response.json()) as T;
}

/** POST a JSON body, with Jupyter's XSRF token (ServerConnection adds it), for a JSON answer. */
export async function postJson<T>(
  settings: ServerConnection.ISettings,
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const init = { method: "POST", body: JSON.stringify(body), signal: signal ?? null };
  const response = await request(settings, path, init);
  return (await response.json()) as T;
}

/**
 * One request, with Jupyter's auth and XSRF; a 503 (the database held by a kernel) waits its
 * Retry-After and is tried again a few times. Anything else that is not 2xx throws a RestError.
 * ``init.signal`` aborts the request and the waits between its attempts.
 */
async function request(
  settings: ServerConnection.ISettings,
  path: string,
  init: RequestInit,
  query?: Record<string, string>,
): Promise<Response> {
  const search = query !== undefined && Object.keys(query).length > 0 ? `?${new URLSearchParams(query)}` : "";
  const url = URLExt.join(settings.baseUrl, path) + search;
  // Not Lab's default "no-store", for which ServerConnection appends a timestamp to the
  // query that boonb's endpoints refuse as an unknown parameter; "no-cache" revalidates
  // every time (nothing stale) without it.
  const sent: RequestInit = { cache: "no-cache", ...init };
  for (let attempt = 0; ; attempt += 1) {
    const response = await ServerConnection.makeRequest(url, sent, settings);
    if (response.ok) return response;
    const error = await restError(response);
    if (response.status !== 503 || attempt >= RETRIES_503) throw error;
    await sleep((error.retryAfterS ?? DEFAULT_RETRY_S) * 1000, init.signal ?? undefined);
  }
}

async function restError(response: Response): Promise<RestError> {
  const retry = Number.parseFloat(response.headers.get("Retry-After") ?? "");
  let type = "HTTPError";
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { error?: { type?: string; message?: string }; message?: string };
    type = body.error?.type ?? type;
    message = body.error?.message ?? body.message ?? message;
  } catch {
    // Not JSON (a proxy's page): the status line says it.
  }
  return new RestError(message, response.status, type, Number.isFinite(retry) ? retry : null);
}

/** Wait ``ms``; rejects at once when ``signal`` aborts (a closed panel sends nothing more). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** An answer asking again cannot change (a refused token, an unknown chat or run, a bad
 * target): polling stops. 408 and 429 are about the moment, not the request. */
export function isPermanent(error: unknown): boolean {
  if (!(error instanceof RestError)) return false;
  return error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// -- the poller -----------------------------------------------------------------------------

export interface PollerOptions {
  /** One poll; resolves whether to go on (something still runs). */
  tick: () => Promise<boolean>;
  /** A poll failed (not a 503, which only waits): the poller backs off and goes on, or,
   * for an error asking again cannot change (see isPermanent), stops. */
  onError?: (error: unknown) => void;
  intervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Calls ``tick`` every second while it says something runs, and stops when it says nothing
 * does. While the page is hidden the wait doubles up to 30 s; shown again, it polls at once
 * and every second. A 503 waits its Retry-After; a permanent error (a 4xx, see isPermanent)
 * is reported and stops the polling; another error is reported and the wait doubles (up to
 * 30 s) until a poll succeeds. A start() while a poll is out polls once more after it,
 * whatever that poll said: what asked for the start may have changed what runs.
 */
export class Poller {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private inFlight = false;
  /** A start() came while a poll was out: its answer may predate what started. */
  private again: number | null = null;
  private disposed = false;
  private hiddenMs: number;
  private errorMs = 0;
  private readonly intervalMs: number;
  private readonly maxMs: number;

  constructor(private readonly options: PollerOptions) {
    this.intervalMs = options.intervalMs ?? POLL_MS;
    this.maxMs = options.maxIntervalMs ?? MAX_POLL_MS;
    this.hiddenMs = this.intervalMs;
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  /** Whether it polls (a poll is scheduled or out). */
  get isPolling(): boolean {
    return this.running;
  }

  /** Poll after the interval (or ``delayMs``), and on while something runs; no-op if polling. */
  start(delayMs: number = this.intervalMs): void {
    if (this.disposed) return;
    this.running = true;
    if (this.inFlight) this.again = Math.min(this.again ?? delayMs, delayMs);
    else if (this.timer === null) this.schedule(delayMs);
  }

  stop(): void {
    this.running = false;
    this.again = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  dispose(): void {
    this.disposed = true;
    this.stop();
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => void this.run(), ms);
  }

  private async run(): Promise<void> {
    this.timer = null;
    if (!this.running || this.disposed) return;
    this.inFlight = true;
    let next: number | null;
    try {
      const live = await this.options.tick();
      this.errorMs = 0;
      next = live ? this.nextWait() : null;
    } catch (error) {
      if (this.disposed) return; // aborted by dispose(): nobody to tell
      if (error instanceof RestError && error.status === 503) {
        next = (error.retryAfterS ?? DEFAULT_RETRY_S) * 1000;
      } else if (isPermanent(error)) {
        this.options.onError?.(error);
        next = null;
        this.again = null;
      } else {
        this.errorMs = Math.min(this.maxMs, Math.max(this.intervalMs, this.errorMs * 2));
        this.options.onError?.(error);
        next = Math.max(this.errorMs, this.nextWait());
      }
    } finally {
      this.inFlight = false;
    }
    if (this.again !== null) {
      // Started during the poll: look once more, whatever it said.
      next = next === null ? this.again : Math.min(next, this.again);
      this.again = null;
      this.running = true;
    }
    if (next === null) this.running = false;
    else if (this.running && !this.disposed) this.schedule(next);
  }

  /** The wait before the next poll: the interval, doubling each poll while the page is hidden. */
  private nextWait(): number {
    if (typeof document !== "undefined" && document.hidden) {
      this.hiddenMs = Math.min(this.maxMs, this.hiddenMs * 2);
      return this.hiddenMs;
    }
    this.hiddenMs = this.intervalMs;
    return this.intervalMs;
  }

  /** Shown again: poll now, and every second from there. */
  private readonly onVisibility = (): void => {
    if (document.hidden || !this.running || this.disposed) return;
    this.hiddenMs = this.intervalMs;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.schedule(0);
    }
  };
}

// -- the model ------------------------------------------------------------------------------

type Handler = (...args: never[]) => void;

interface ViewRequestMessage {
  kind?: unknown;
  request_id?: unknown;
}

/**
 * A stand-in for anywidget's model: the views (TraceView, TasksView, OrchestratorView) run
 * on it unchanged. ``send()`` POSTs to ``/views/{view}`` and the replies come back as
 * ``msg:custom`` events; while anything shown runs it polls ``/frames`` (see Poller) and
 * stops when nothing does; every request polls again (a cancel or retry may change that).
 * The view's first request (sent as it is built) brings the first poll's cursor with it, so
 * a panel's first paint is one round trip; without one, the model polls for it alone.
 * The trace viewer's image requests are answered from ``/attachments/{sha256}``, the bytes
 * as the reply's buffer as a kernel sends them. A failed request is the view's error reply;
 * a failed poll, which answers no request, is a ``rest:error`` event (with the RestError).
 */
class RestModel {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly traits: Record<string, unknown>;
  private readonly poller: Poller;
  private cursor: string | null = null;
  /** Aborts every request out (and its 503 waits) when the panel closes. */
  private readonly abort = new AbortController();
  /** The first poll: where frames go on from. Requests and polls wait for it, so no frame
   * is lost between a reply's read and the polling's start. Null until the view's first
   * request (which carries it) or, if the view sends none as it is built, a poll of its own. */
  private started: Promise<void> | null = null;
  private disposed = false;
  readonly widget_manager = {
    get_model: (): Promise<never> => Promise.reject(new Error("a side panel has no widget manager")),
  };

  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly view: ViewName,
    private readonly target: RestTarget,
  ) {
    const run = view === "orchestrator" ? (target.run_id ?? null) : null;
    this.traits = {
      chat_id: view === "traceviewer" ? (target.chat_id ?? "") : "",
      mode: run !== null ? "run" : "orchestrator",
      run_id: run ?? "",
      blocking_run: "",
    };
    this.poller = new Poller({ tick: () => this.tick(), onError: (error) => this.emit("rest:error", error) });
    // The view is built right after its model, in the same task, and sends its first
    // request then; only a view that sends none needs a poll of its own to start from.
    queueMicrotask(() => {
      if (this.started === null && !this.disposed) this.started = this.startFrom(Promise.resolve(null));
    });
  }

  get(key: string): unknown {
    return this.traits[key];
  }

  set(key: string, value: unknown): void {
    this.traits[key] = value;
    this.emit(`change:${key}`);
  }

  save_changes(): void {}

  on(name: string, handler: Handler): void {
    let handlers = this.handlers.get(name);
    if (handlers === undefined) this.handlers.set(name, (handlers = new Set()));
    handlers.add(handler);
  }

  off(name?: string | null, handler?: Handler | null): void {
    if (name === undefined || name === null) {
      this.handlers.clear();
    } else if (handler === undefined || handler === null) {
      this.handlers.delete(name);
    } else {
      this.handlers.get(name)?.delete(handler);
    }
  }

  send(content: unknown, _callbacks?: unknown, _buffers?: unknown): void {
    if (this.disposed) throw new Error("the panel was closed");
    const message = (content ?? {}) as ViewRequestMessage;
    const requestId = typeof message.request_id === "string" ? message.request_id : null;
    const work = message.kind === "image" ? this.image(content as ImageRequestMessage) : this.ask(content);
    work.catch((error: unknown) => {
      if (!this.disposed) this.reply({ kind: "error", request_id: requestId, message: messageOf(error) });
    });
  }

  /** Look for frames now (and on while anything shown runs): for when something may have
   * started since polling stopped, e.g. the sidebar's activity version changed. */
  refresh(): void {
    if (!this.disposed) this.poller.start(0);
  }

  dispose(): void {
    this.disposed = true;
    this.abort.abort();
    this.poller.dispose();
    this.handlers.clear();
  }

  private async ask(request: unknown): Promise<void> {
    const body = { target: this.wireTarget(), request };
    const path = `${API}/views/${this.view}`;
    if (this.started === null) {
      // The first request: its answer carries the first poll's cursor, taken before its read.
      const asked = postJson<ViewReplies>(this.settings, path, { ...body, frames: true }, this.abort.signal);
      this.started = this.startFrom(asked.then((answer) => answer.frames ?? null));
      for (const reply of (await asked).replies) this.reply(reply);
      return;
    }
    await this.started;
    const answer = await postJson<ViewReplies>(this.settings, path, body, this.abort.signal);
    for (const reply of answer.replies) this.reply(reply);
    // A request may have set something running (a retry): look, and poll on while it runs.
    if (!this.disposed) this.poller.start(0);
  }

  /** Go on from the first poll (``first``), or poll for it when there is none (a failed
   * first request); poll on while anything shown runs. */
  private async startFrom(first: Promise<ViewFrames | null>): Promise<void> {
    try {
      const frames = await first.catch(() => null); // the request's own reply says why
      const live = frames === null ? await this.poll() : this.accept(frames);
      if (live) this.poller.start();
    } catch (error) {
      if (!this.disposed) this.emit("rest:error", error);
    }
  }

  /** A poll of the poller's: after the first, so its cursor is never older than a reply. */
  private async tick(): Promise<boolean> {
    if (this.started !== null) await this.started;
    return this.poll();
  }

  /**
   * One poll of the frames since the cursor; whether anything shown still runs. A cursor the
   * server no longer takes (the project's database was replaced, or created after the panel
   * opened) starts again from now: the event ``rest:reset`` tells the panel that frames may
   * have been missed, so it can show its view afresh.
   */
  private async poll(): Promise<boolean> {
    if (this.disposed) return false;
    const query: Record<string, string> = { target: JSON.stringify(this.wireTarget()) };
    if (this.cursor !== null) query["after"] = this.cursor;
    const path = `${API}/views/${this.view}/frames`;
    let answer: ViewFrames;
    try {
      answer = await getJson<ViewFrames>(this.settings, path, query, this.abort.signal);
    } catch (error) {
      const stale = error instanceof RestError && error.type === "InvalidCursor";
      if (this.cursor === null || !stale) throw error;
      this.cursor = null;
      const live = await this.poll();
      if (!this.disposed) this.emit("rest:reset");
      return live;
    }
    return this.accept(answer);
  }

  /** Go on from a poll's answer: its frames to the view, its cursor for the next. */
  private accept(answer: ViewFrames): boolean {
    if (this.disposed) return false;
    this.cursor = answer.cursor;
    for (const frame of answer.frames) this.reply(frame);
    return answer.live;
  }

  /** A stored image's bytes (or thumbnail) as the kernel's image reply and its buffer. */
  private async image(asked: ImageRequestMessage): Promise<void> {
    const ref = asked.attachment;
    const query: Record<string, string> = {
      mime: ref.mime,
      size_bytes: String(ref.size_bytes),
      width: String(ref.width),
      height: String(ref.height),
    };
    if (typeof asked.max_width === "number") query["max_width"] = String(asked.max_width);
    const path = `${API}/attachments/${encodeURIComponent(ref.sha256)}`;
    const init = { method: "GET", signal: this.abort.signal };
    const response = await request(this.settings, path, init, query);
    const data = await response.arrayBuffer();
    const headers = response.headers;
    this.reply(
      {
        kind: "image",
        request_id: asked.request_id,
        sha256: ref.sha256,
        mime: headers.get("Content-Type") ?? ref.mime,
        width: Number(headers.get("X-Image-Width") ?? ref.width),
        height: Number(headers.get("X-Image-Height") ?? ref.height),
      },
      [new DataView(data)],
    );
  }

  private wireTarget(): RestTarget {
    if (this.view === "traceviewer") return { chat_id: this.target.chat_id ?? "" };
    if (this.view === "orchestrator") return { run_id: this.target.run_id ?? null };
    return {};
  }

  private reply(message: unknown, buffers: DataView[] = []): void {
    if (this.disposed) return;
    this.emit("msg:custom", message, buffers);
  }

  private emit(name: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(name) ?? [])]) {
      (handler as (...values: unknown[]) => void)(...args);
    }
    if (name === "rest:error" && (this.handlers.get(name)?.size ?? 0) === 0) {
      console.warn(`boonb: polling the ${this.view} panel failed`, args[0]);
    }
  }
}

interface ImageRequestMessage {
  kind: "image";
  request_id: string;
  attachment: ImageRef;
  max_width: number | null;
}

/** What a panel does with its model besides handing it to the view. */
export interface RestModelControls {
  /** Stop polling and drop every listener (the panel closed). */
  dispose(): void;
  /** Poll now, and on while anything shown runs. Polling stops when nothing runs, so a
   * chat that starts a new turn later is seen only after this (call it when the activity
   * version changes). */
  refresh(): void;
}

/** anywidget's model of a view, fed by the server (see RestModel). */
export function restModel(
  app: { serverSettings: ServerConnection.ISettings },
  view: ViewName,
  target: RestTarget,
): WidgetModel & RestModelControls {
  return new RestModel(app.serverSettings, view, target) as unknown as WidgetModel & RestModelControls;
}

/**
 * anywidget's host for a panel's view: the server answers a traces request with the chat's
 * id as the widget reference, and ``getWidget(chatId)`` renders a REST trace viewer of that
 * chat, torn down (polling stopped) when the render's signal aborts.
 */
export function restHost(settings: ServerConnection.ISettings): Host {
  const getModel = (ref: string): Promise<never> =>
    Promise.reject(new Error(`a side panel has no widget model ${ref}; getWidget renders a chat`));
  const getWidget = <T = unknown>(ref: string): Promise<ResolvedWidget<T>> =>
    Promise.resolve({
      exports: {} as T,
      render: async ({ el, signal }: { el: HTMLElement; signal?: AbortSignal }): Promise<void> => {
        if (signal?.aborted) return;
        const model = restModel({ serverSettings: settings }, "traceviewer", { chat_id: ref });
        const view = new TraceView(model, el);
        signal?.addEventListener("abort", () => {
          view.destroy();
          model.dispose();
        });
      },
    });
  return { getWidget, getModel } as Host;
}
