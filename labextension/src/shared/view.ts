// The base every view is built on: its requests to the kernel, the replies and frames it
// receives, painting batched to one per animation frame, the theme, and teardown.
import { h } from "./dom";
import { PendingRequests } from "./requests";
import type { Destroyable, WidgetModel } from "./widget";

/** What a view sends: every request names itself so its reply can be told apart. */
export interface KernelRequest {
  kind: string;
  request_id: string;
}

/** What the kernel sends a view: a reply or a pushed frame, told apart by its kind. */
export interface KernelReply {
  kind: string;
}

/** A first request not answered after this long is sent again, then after twice that, up
 * to the last delay (5 s, 10 s, 20 s, 40 s). */
const FIRST_REQUEST_RETRY_MS = 5_000;
const FIRST_REQUEST_RETRY_LAST_MS = 40_000;

export abstract class KernelView<Request extends KernelRequest, Message extends KernelReply>
  implements Destroyable
{
  /** The view's element; every view's root carries `boonb-view` (shared/styles.css). */
  protected readonly root: HTMLElement;
  protected readonly requests: PendingRequests<Request>;
  protected closed = false;
  /** The widget's kernel restarted or stopped: nothing more can be sent. */
  protected kernelGone = false;
  private frameHandle = 0;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    protected readonly model: WidgetModel,
    className: string,
  ) {
    this.root = h("div", `boonb-view ${className}`);
    this.root.dataset["chatId"] = model.get("chat_id");
    this.requests = new PendingRequests((message, buffers) => this.sendToKernel(message, buffers));
    const onMessage = (message: Message): void => {
      if (!this.closed) this.onMessage(message);
    };
    // @jupyter-widgets' manager sets every model's `comm_live` to false when the kernel
    // restarts (its `disconnect()`), which the model announces with this event; the comm is
    // not closed then, so `comm:close` never comes. anywidget passes any event name through.
    const onCommLive = (): void => this.loseKernel();
    model.on("msg:custom", onMessage);
    model.on("comm_live_update", onCommLive);
    this.onDestroy(() => {
      model.off("msg:custom", onMessage);
      model.off("comm_live_update", onCommLive);
    });
    this.followTheme();
  }

  /** A reply or frame from the kernel (never after destroy). */
  protected abstract onMessage(message: Message): void;

  /** Bring the DOM up to date with the view's state. */
  protected abstract paint(): void;

  /** The kernel is gone (first time only): a view that can say so overrides this. */
  protected onKernelGone(): void {}

  /** Paint on the next animation frame, once however many changes come before it. */
  protected schedule(): void {
    if (this.frameHandle !== 0 || this.closed) return;
    this.frameHandle = requestAnimationFrame(() => {
      this.frameHandle = 0;
      this.paint();
    });
  }

  /** Paint now (not on the next frame), for interactions that then measure the layout. */
  protected paintNow(): void {
    if (this.frameHandle !== 0) {
      cancelAnimationFrame(this.frameHandle);
      this.frameHandle = 0;
    }
    this.paint();
  }

  /**
   * Send a view's first request, and send it again until it is answered: one sent while a
   * reloaded page was still reconnecting to the kernel can be lost, which left the view
   * "loading…" for good. It goes again with the same id, so only its first reply is taken.
   * (A cell that blocks the kernel only delays the replies; they queue.)
   */
  protected sendUntilAnswered(message: Request): void {
    this.requests.send(message);
    const again = (delayMs: number): void => {
      const timer = window.setTimeout(() => {
        if (this.closed || this.kernelGone || !this.requests.isPending(message.request_id)) return;
        this.requests.send(message);
        if (delayMs < FIRST_REQUEST_RETRY_LAST_MS) again(delayMs * 2);
      }, delayMs);
      this.onDestroy(() => window.clearTimeout(timer));
    };
    again(FIRST_REQUEST_RETRY_MS);
  }

  /** Listen to a DOM event until the view is destroyed. */
  protected listen<K extends keyof HTMLElementEventMap>(
    target: HTMLElement,
    type: K,
    handler: (event: HTMLElementEventMap[K]) => void,
  ): void {
    target.addEventListener(type, handler);
    this.onDestroy(() => target.removeEventListener(type, handler));
  }

  /** Run ``cleanup`` when the view is destroyed. */
  protected onDestroy(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.frameHandle !== 0) cancelAnimationFrame(this.frameHandle);
    for (const cleanup of this.cleanups.splice(0).reverse()) cleanup();
    this.root.remove();
  }

  /**
   * Send a request, or notice that the kernel is gone: a view rendered after its kernel
   * restarted or shut down never saw `comm_live_update`, and the comm then throws.
   */
  private sendToKernel(message: Request, buffers?: ArrayBuffer[]): void {
    if (this.kernelGone) return;
    try {
      // Binary data goes as the comm message's buffers, never as base64 in the JSON.
      if (buffers === undefined) this.model.send(message);
      else this.model.send(message, undefined, buffers);
    } catch (error) {
      console.info("boonb: the kernel is gone, so the request was not sent", error);
      this.loseKernel();
    }
  }

  private loseKernel(): void {
    if (this.closed || this.kernelGone) return;
    this.kernelGone = true;
    this.onKernelGone();
  }

  /**
   * Mirror the host's theme on the root as `data-theme="light|dark"`, for the colours
   * shared/styles.css defines for both. JupyterLab marks its theme on the body (and the
   * user can switch it at any time); other hosts get the system's preference.
   */
  private followTheme(): void {
    const body = document.body;
    const system = window.matchMedia("(prefers-color-scheme: dark)");
    const update = (): void => {
      const lab = body.dataset["jpThemeLight"];
      const dark = lab !== undefined ? lab === "false" : system.matches;
      const theme = dark ? "dark" : "light";
      if (this.root.dataset["theme"] !== theme) this.root.dataset["theme"] = theme;
    };
    update();
    const observer = new MutationObserver(update);
    observer.observe(body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
    system.addEventListener("change", update);
    this.onDestroy(() => {
      observer.disconnect();
      system.removeEventListener("change", update);
    });
  }
}
