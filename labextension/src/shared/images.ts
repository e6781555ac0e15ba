// Stored images in a view: thumbnails (skeleton while loading, a broken placeholder with
// Retry), a grid of one or two columns, and a lightbox with the full image. The bytes come
// from the kernel by reference, as binary buffers; the view says how (``ImageFetch``).
import "./images.css";
import { h } from "./dom";
import type { WidgetModel } from "./widget";

/** What a view knows of a stored image (boonb.attachments.AttachmentRef). */
export interface ImageRef {
  sha256: string;
  mime: string;
  size_bytes: number;
  width: number;
  height: number;
  name?: string;
}

/** CSS pixels a thumbnail is shown at, at most. */
export const THUMB_PX = 300;
/** Pixels of the thumbnail asked for: twice the display size, for sharp screens. */
export const THUMB_FETCH_PX = 2 * THUMB_PX;

/** How a view shows stored images: where their bytes come from, and its lightbox. */
export interface ImageContext {
  loader: ImageLoader;
  lightbox: Lightbox;
}

/**
 * The stored image a request part stands for: a rebuilt request (the trace viewer's
 * "request as sent") keeps ``{"type": "image_url", "image_url": {"url": "attachment:…"},
 * "attachment": ref}`` where the data URI was. Null for any other part.
 */
export function attachmentOf(part: unknown): ImageRef | null {
  if (part === null || typeof part !== "object" || Array.isArray(part)) return null;
  const ref = (part as Record<string, unknown>)["attachment"];
  if (ref === null || typeof ref !== "object" || Array.isArray(ref)) return null;
  const fields = ref as Record<string, unknown>;
  const ok =
    typeof fields["sha256"] === "string" &&
    typeof fields["mime"] === "string" &&
    typeof fields["width"] === "number" &&
    typeof fields["height"] === "number";
  return ok ? (ref as ImageRef) : null;
}

/** Fetch a stored image's bytes: a thumbnail at most ``maxWidth`` wide, or (null) the full one. */
export type ImageFetch = (ref: ImageRef, maxWidth: number | null) => Promise<Blob>;

/** Object URLs of fetched images, each fetched once; a failed one is fetched again on Retry. */
export class ImageLoader {
  private readonly loading = new Map<string, Promise<string>>();
  private readonly loaded = new Map<string, string>();

  constructor(private readonly fetchImage: ImageFetch) {}

  /** The URL if it is already here (a repaint then shows the image with no skeleton). */
  ready(ref: ImageRef, maxWidth: number | null): string | undefined {
    return this.loaded.get(key(ref, maxWidth));
  }

  load(ref: ImageRef, maxWidth: number | null): Promise<string> {
    const k = key(ref, maxWidth);
    let found = this.loading.get(k);
    if (found === undefined) {
      found = this.fetchImage(ref, maxWidth).then((blob) => {
        const url = URL.createObjectURL(blob);
        this.loaded.set(k, url);
        return url;
      });
      // A failure is not kept: Retry (or the next paint) asks the kernel again.
      found.catch(() => this.loading.delete(k));
      this.loading.set(k, found);
    }
    return found;
  }

  dispose(): void {
    for (const url of this.loaded.values()) URL.revokeObjectURL(url);
    this.loaded.clear();
    this.loading.clear();
  }
}

/** The kernel's answer to an image request: the bytes are the message's first buffer. */
interface ImageAnswer {
  kind: string;
  request_id?: string | null;
  mime?: string;
  message?: string;
}

/**
 * Image requests to a widget's kernel (``{kind: "image", request_id, attachment,
 * max_width}``; boonb.widgets.chat_protocol.ImageRequest), answered with the bytes as a
 * binary buffer. Its own request ids and listener, so any view can show stored images
 * without its protocol's other replies knowing about them.
 */
export class KernelImages {
  private readonly prefix = `img-${Math.random().toString(36).slice(2, 10)}`;
  private counter = 0;
  private readonly waiting = new Map<
    string,
    { resolve: (blob: Blob) => void; reject: (error: Error) => void }
  >();

  constructor(private readonly model: WidgetModel) {
    model.on("msg:custom", this.onMessage);
  }

  readonly fetch: ImageFetch = (ref, maxWidth) =>
    new Promise((resolve, reject) => {
      this.counter += 1;
      const id = `${this.prefix}:${this.counter}`;
      this.waiting.set(id, { resolve, reject });
      try {
        this.model.send({ kind: "image", request_id: id, attachment: ref, max_width: maxWidth });
      } catch {
        this.waiting.delete(id);
        reject(new Error("the kernel is gone: rerun the cell to see this image"));
      }
    });

  dispose(): void {
    this.model.off("msg:custom", this.onMessage);
    for (const { reject } of this.waiting.values()) reject(new Error("the view was closed"));
    this.waiting.clear();
  }

  private readonly onMessage = (message: ImageAnswer, buffers: DataView[]): void => {
    const id = message.request_id;
    const waiter = typeof id === "string" ? this.waiting.get(id) : undefined;
    if (waiter === undefined || typeof id !== "string") return; // not one of ours
    this.waiting.delete(id);
    const data = buffers[0];
    if (message.kind === "image" && data !== undefined) {
      waiter.resolve(new Blob([data as DataView<ArrayBuffer>], { type: message.mime ?? "" }));
    } else {
      waiter.reject(new Error(message.message ?? "the kernel sent no image"));
    }
  };
}

function key(ref: ImageRef, maxWidth: number | null): string {
  return `${ref.sha256}:${maxWidth ?? "full"}`;
}

function label(ref: ImageRef): string {
  return ref.name !== undefined && ref.name !== "" ? ref.name : `image ${ref.sha256.slice(0, 8)}`;
}

/** Thumbnails of a message's images: one column for one image, two for more. */
export function thumbnailGrid(
  refs: readonly ImageRef[],
  loader: ImageLoader,
  lightbox: Lightbox,
): HTMLElement {
  const grid = h("div", `boonb-thumbs cols-${refs.length === 1 ? 1 : 2}`);
  for (const ref of refs) grid.append(thumbnail(ref, loader, lightbox));
  return grid;
}

/** One thumbnail: a skeleton until its bytes arrive, the image, or a placeholder with Retry. */
export function thumbnail(ref: ImageRef, loader: ImageLoader, lightbox: Lightbox): HTMLElement {
  const box = h("div", "boonb-thumb");
  box.dataset["sha256"] = ref.sha256;
  // The box has the image's shape before the bytes come, so nothing jumps when they do.
  box.style.width = `${Math.min(THUMB_PX, ref.width)}px`;
  box.style.aspectRatio = `${ref.width} / ${ref.height}`;
  const show = (): void => {
    const ready = loader.ready(ref, THUMB_FETCH_PX);
    if (ready !== undefined) {
      showImage(box, ref, ready, lightbox);
      return;
    }
    box.dataset["state"] = "loading";
    box.replaceChildren(h("div", "boonb-thumb-skeleton"));
    box.setAttribute("aria-busy", "true");
    loader.load(ref, THUMB_FETCH_PX).then(
      (url) => showImage(box, ref, url, lightbox),
      (error: unknown) => showBroken(box, ref, String(error instanceof Error ? error.message : error), show),
    );
  };
  show();
  return box;
}

function showImage(box: HTMLElement, ref: ImageRef, url: string, lightbox: Lightbox): void {
  const open = h("button", "boonb-thumb-open");
  open.type = "button";
  open.title = `${label(ref)} (${ref.width}×${ref.height}): open`;
  const img = h("img", "boonb-thumb-img");
  img.alt = label(ref);
  img.src = url;
  img.width = Math.min(THUMB_PX, ref.width);
  open.append(img);
  open.addEventListener("click", () => lightbox.open(ref, open));
  box.dataset["state"] = "ready";
  box.removeAttribute("aria-busy");
  box.replaceChildren(open);
}

function showBroken(box: HTMLElement, ref: ImageRef, why: string, retry: () => void): void {
  box.dataset["state"] = "error";
  box.removeAttribute("aria-busy");
  const icon = h("span", "boonb-thumb-broken-icon", "⚠");
  icon.setAttribute("aria-hidden", "true");
  const text = h("span", "boonb-thumb-broken-text", `${label(ref)} could not be loaded`);
  const button = h("button", "boonb-thumb-retry", "Retry");
  button.type = "button";
  button.addEventListener("click", retry);
  const broken = h("div", "boonb-thumb-broken");
  broken.title = why;
  broken.setAttribute("role", "img");
  broken.setAttribute("aria-label", `${label(ref)}: could not be loaded. ${why}`);
  broken.append(icon, text, button);
  box.replaceChildren(broken);
}

/**
 * The full image over the page, with a close button; Escape or a click beside the image
 * closes it and focus goes back to the thumbnail that opened it. On document.body, so no
 * output area's overflow or stacking cuts it; it copies the view's theme.
 */
export class Lightbox {
  private overlay: HTMLElement | null = null;
  private returnTo: HTMLElement | null = null;
  private returnSha = "";

  constructor(
    private readonly loader: ImageLoader,
    private readonly themeOf: HTMLElement,
  ) {}

  open(ref: ImageRef, returnTo: HTMLElement): void {
    this.close();
    this.returnTo = returnTo;
    this.returnSha = ref.sha256;
    const overlay = h("div", "boonb-lightbox");
    overlay.dataset["theme"] = this.themeOf.dataset["theme"] ?? "light";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", label(ref));
    const close = h("button", "boonb-lightbox-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    close.title = "Close (Escape)";
    const frame = h("div", "boonb-lightbox-frame");
    frame.dataset["state"] = "loading";
    frame.append(h("div", "boonb-thumb-skeleton"));
    const caption = h("div", "boonb-lightbox-caption", `${label(ref)} · ${ref.width}×${ref.height}`);
    overlay.append(frame, caption, close);
    close.addEventListener("click", () => this.close());
    overlay.addEventListener("click", (event) => {
      if (event.target === overlay) this.close();
    });
    overlay.addEventListener("keydown", this.onKeyInside);
    document.addEventListener("keydown", this.onEscape, true);
    document.body.append(overlay);
    this.overlay = overlay;
    close.focus();
    this.loader.load(ref, null).then(
      (url) => {
        if (this.overlay !== overlay) return;
        const img = h("img", "boonb-lightbox-img");
        img.alt = label(ref);
        img.src = url;
        frame.dataset["state"] = "ready";
        frame.replaceChildren(img);
      },
      (error: unknown) => {
        if (this.overlay !== overlay) return;
        frame.dataset["state"] = "error";
        frame.replaceChildren(
          h("div", "boonb-lightbox-error", error instanceof Error ? error.message : String(error)),
        );
      },
    );
  }

  get isOpen(): boolean {
    return this.overlay !== null;
  }

  close(): void {
    const overlay = this.overlay;
    if (overlay === null) return;
    this.overlay = null;
    overlay.remove();
    document.removeEventListener("keydown", this.onEscape, true);
    // A repaint while the lightbox was open may have rebuilt the thumbnail: find it again.
    let back = this.returnTo;
    if (back !== null && !back.isConnected) {
      back = this.themeOf.querySelector<HTMLElement>(
        `.boonb-thumb[data-sha256="${this.returnSha}"] .boonb-thumb-open`,
      );
    }
    this.returnTo = null;
    back?.focus();
  }

  /** Escape closes, wherever the focus is (a click on the image may have moved it). */
  private readonly onEscape = (event: KeyboardEvent): void => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    // Before Lab's own Escape (leave edit mode), which would take focus from the thumbnail.
    event.stopPropagation();
    this.close();
  };

  // Keep Lab's shortcuts (A/B add cells, arrows move between them...) out of the dialog.
  private readonly onKeyInside = (event: KeyboardEvent): void => event.stopPropagation();
}
