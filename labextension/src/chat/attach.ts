// Images the user attaches to a follow-up: the picker button, and the tray of pending
// thumbnails above the input. Each file is uploaded as soon as it is added (the kernel
// checks and stores it), so a refusal shows at once and Send only passes references.
import { h } from "../shared/dom";
import { formatBytes } from "../shared/format";
import type { AttachmentRef } from "./protocol";

/** What the picker offers; the kernel reads the type from the content and decides. */
const ACCEPT = "image/png,image/jpeg,image/gif,image/webp";

interface PendingImage {
  id: number;
  name: string;
  /** The file in the browser, for the pending thumbnail (no round trip to the kernel). */
  url: string;
  ref: AttachmentRef | null;
}

export class AttachmentTray {
  /** The pending thumbnails and the line that says why a file was refused. */
  readonly el: HTMLElement;
  /** Opens the file picker. */
  readonly button: HTMLButtonElement;
  private readonly picker: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly refused: HTMLElement;
  private readonly pending: PendingImage[] = [];
  private counter = 0;
  private disabled = false;

  constructor(
    private readonly upload: (file: File) => Promise<AttachmentRef>,
    private readonly changed: () => void,
    private readonly maxBytes: () => number,
  ) {
    this.button = h("button", "chat-attach");
    this.button.type = "button";
    this.button.append(paperclip());
    this.button.title = "Attach images (PNG, JPEG, GIF, WebP); or drop or paste them here";
    this.button.setAttribute("aria-label", "Attach images");
    this.picker = h("input", "chat-attach-picker");
    this.picker.type = "file";
    this.picker.accept = ACCEPT;
    this.picker.multiple = true;
    this.picker.hidden = true;
    this.list = h("div", "chat-pending");
    this.list.setAttribute("aria-label", "Images to send");
    this.refused = h("div", "chat-attach-error");
    this.refused.setAttribute("role", "alert");
    this.refused.hidden = true;
    this.el = h("div", "chat-attachments");
    this.el.append(this.picker, this.list, this.refused);
    this.el.hidden = true;
    this.button.addEventListener("click", () => this.picker.click());
    this.picker.addEventListener("change", () => {
      this.add(Array.from(this.picker.files ?? []));
      this.picker.value = ""; // the same file chosen again is a new change
    });
  }

  /** Upload each file and show it pending; a refused one says why and is left out. */
  add(files: File[]): void {
    if (this.disabled || files.length === 0) return;
    this.showRefused(null);
    for (const file of files) this.addOne(file);
    this.paint();
  }

  private addOne(file: File): void {
    const limit = this.maxBytes();
    if (limit > 0 && file.size > limit) {
      // The kernel would refuse it too; this spares reading and sending the bytes first.
      this.showRefused(
        `Not attached: ${file.name} is ${formatBytes(file.size)}; the limit is ` +
          `${formatBytes(limit)} (MAX_ATTACHMENT_SIZE_MB): scale it down or compress it first.`,
      );
      return;
    }
    this.counter += 1;
    const item: PendingImage = {
      id: this.counter,
      name: file.name,
      url: URL.createObjectURL(file),
      ref: null,
    };
    this.pending.push(item);
    this.upload(file).then(
      (ref) => {
        item.ref = ref;
        this.paint();
      },
      (error: unknown) => {
        this.remove(item.id);
        this.showRefused(`Not attached: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  }

  /** References of the images uploaded, to send with the text. */
  refs(): AttachmentRef[] {
    return this.pending.flatMap((item) => (item.ref === null ? [] : [item.ref]));
  }

  /** Some image is still on its way to the kernel (Send waits for it). */
  uploading(): boolean {
    return this.pending.some((item) => item.ref === null);
  }

  count(): number {
    return this.pending.length;
  }

  /** After a send: the images went with it. */
  clear(): void {
    for (const item of this.pending.splice(0)) URL.revokeObjectURL(item.url);
    this.showRefused(null);
    this.paint();
  }

  setDisabled(disabled: boolean): void {
    this.disabled = disabled;
    this.button.disabled = disabled;
  }

  dispose(): void {
    for (const item of this.pending.splice(0)) URL.revokeObjectURL(item.url);
  }

  private remove(id: number): void {
    const at = this.pending.findIndex((item) => item.id === id);
    if (at < 0) return;
    const [item] = this.pending.splice(at, 1);
    if (item !== undefined) URL.revokeObjectURL(item.url);
    this.paint();
  }

  private showRefused(text: string | null): void {
    this.refused.hidden = text === null;
    this.refused.textContent = text ?? "";
    this.el.hidden = this.pending.length === 0 && text === null;
  }

  private paint(): void {
    const nodes = this.pending.map((item) => {
      const box = h("div", "chat-pending-item");
      box.dataset["state"] = item.ref === null ? "uploading" : "ready";
      box.dataset["name"] = item.name;
      const img = h("img", "chat-pending-img");
      img.src = item.url;
      img.alt = item.name;
      const remove = h("button", "chat-pending-remove", "×");
      remove.type = "button";
      remove.title = `Remove ${item.name}`;
      remove.setAttribute("aria-label", `Remove ${item.name}`);
      remove.addEventListener("click", () => this.remove(item.id));
      box.append(img, remove);
      if (item.ref === null) box.append(h("div", "chat-pending-busy", "uploading…"));
      return box;
    });
    this.list.replaceChildren(...nodes);
    this.list.hidden = nodes.length === 0;
    this.el.hidden = this.pending.length === 0 && this.refused.hidden;
    this.changed();
  }
}

/** A paperclip drawn in the button's text colour (no icon font: the bundle is self-contained). */
function paperclip(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute(
    "d",
    "M21.4 11.1l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5" +
      "a1.8 1.8 0 0 1-2.6-2.6l7.8-7.8",
  );
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

/** The image files of a drop or a paste (other kinds of data are left alone). */
export function filesOf(data: DataTransfer | null): File[] {
  if (data === null) return [];
  const files = Array.from(data.files);
  if (files.length > 0) return files;
  // A pasted screenshot comes as an item of kind "file", not always in `files`.
  return Array.from(data.items)
    .filter((item) => item.kind === "file")
    .flatMap((item) => {
      const file = item.getAsFile();
      return file === null ? [] : [file];
    });
}

/** Whether a drag carries files (text dragged over the chat is not an attachment). */
export function dragHasFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer?.types ?? []).includes("Files");
}
