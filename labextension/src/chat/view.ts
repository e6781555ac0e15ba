// The chat view: a snapshot on every render, live frames after it, and a follow-up box.
import {
  STATE_LABELS,
  createChip,
  createRestartMarker,
  createTurnGroup,
  fillTurnBody,
  updateTurnHeader,
} from "./dom";
import { h } from "../shared/dom";
import { ImageLoader, KernelImages, Lightbox } from "../shared/images";
import type { ErrorReply } from "../shared/protocol";
import { KernelView } from "../shared/view";
import type { WidgetModel } from "../shared/widget";
import { AttachmentTray, dragHasFiles, filesOf } from "./attach";
import type {
  AttachmentRef,
  ChatFrameMessage,
  ChatKernelMessage,
  ChatRequest,
  UploadReply,
  UploadRequest,
} from "./protocol";
import { ChatState, resumeCommand } from "./state";

/** The answer to an upload: the stored image's reference, or why it was refused. */
type UploadAnswer = (reply: UploadReply | ErrorReply) => void;

/**
 * The most bytes of a file one upload message carries (chat_protocol.UPLOAD_CHUNK_BYTES):
 * the Jupyter server closes a websocket whose message is over 10 MiB.
 */
const UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;

/** Within this many pixels of the bottom, new content keeps the log scrolled to the end. */
const STICK_PX = 48;

export class ChatView extends KernelView<ChatRequest, ChatKernelMessage> {
  private readonly state = new ChatState();
  private readonly title: HTMLElement;
  private readonly status: HTMLElement;
  private readonly timeline: HTMLElement;
  private readonly chips: HTMLElement;
  private readonly expandAll: HTMLButtonElement;
  private readonly log: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly error: HTMLElement;
  private readonly kernelGoneNote: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly groups = new Map<number, { el: HTMLElement; version: number; key: string }>();
  /**
   * Frames since the last snapshot was applied. They are applied at once (a blocking cell
   * keeps the kernel from answering the snapshot until the run ends, and the run should
   * still show live), and those newer than a snapshot are applied again on top of it.
   */
  private sinceSnapshot: ChatFrameMessage[] = [];
  private readonly collapsed = new Set<number>();
  private readonly expandedCalls = new Set<string>();
  private selected: number | null = null;
  private timelineVersion = -1;
  private readonly tray: AttachmentTray;
  private readonly images: { loader: ImageLoader; lightbox: Lightbox };
  /** Uploads waiting for their reply, by request id. */
  private readonly uploads = new Map<string, UploadAnswer>();

  constructor(model: WidgetModel, el: HTMLElement) {
    super(model, "boonb-chat");
    this.state.chatId = model.get("chat_id");
    this.root.dataset["kernel"] = "live";
    this.root.dataset["ready"] = "false";
    const header = h("div", "chat-header");
    this.title = h("span", "chat-title", "Agent");
    this.status = h("span", "chat-status", "loading…");
    const shortId = h("span", "chat-id", model.get("chat_id").slice(0, 8));
    shortId.title = `chat ${model.get("chat_id")}`;
    header.append(this.title, shortId, this.status);

    this.timeline = h("div", "chat-timeline");
    this.timeline.setAttribute("role", "toolbar");
    this.timeline.setAttribute("aria-label", "Turns");
    this.chips = h("div", "chat-chips");
    this.expandAll = h("button", "chat-expand-all", "show all turns");
    this.expandAll.type = "button";
    this.expandAll.hidden = true;
    this.timeline.append(this.chips, this.expandAll);

    this.log = h("div", "chat-log");
    this.log.setAttribute("role", "log");
    this.empty = h("div", "chat-empty", "No messages yet.");
    this.log.append(this.empty);
    this.error = h("div", "chat-error");
    this.error.hidden = true;
    this.kernelGoneNote = h("div", "chat-kernel-gone");
    this.kernelGoneNote.setAttribute("role", "status");
    this.kernelGoneNote.hidden = true;

    const kernelImages = new KernelImages(model);
    const loader = new ImageLoader(kernelImages.fetch);
    this.images = { loader, lightbox: new Lightbox(loader, this.root) };
    this.tray = new AttachmentTray(
      this.upload,
      () => this.update(false),
      () => this.state.maxAttachmentBytes,
    );
    const compose = h("div", "chat-compose");
    this.input = h("textarea", "chat-input");
    this.input.rows = 2;
    this.input.setAttribute("aria-label", "Follow-up message");
    this.sendButton = h("button", "chat-send", "Send");
    this.sendButton.type = "button";
    compose.append(this.tray.button, this.input, this.sendButton);

    this.root.append(
      header,
      this.timeline,
      this.log,
      this.error,
      this.kernelGoneNote,
      this.tray.el,
      compose,
    );
    el.append(this.root);
    this.onDestroy(() => {
      this.images.lightbox.close();
      kernelImages.dispose();
      loader.dispose();
      this.tray.dispose();
    });

    this.listen(this.chips, "click", this.onChipClick);
    this.listen(this.expandAll, "click", this.onExpandAll);
    this.listen(this.log, "click", this.onLogClick);
    this.listen(this.input, "keydown", this.onKey);
    this.listen(this.sendButton, "click", this.onSendClick);
    this.listen(this.input, "paste", this.onPaste);
    this.listen(this.root, "dragover", this.onDragOver);
    this.listen(this.root, "dragleave", this.onDragLeave);
    this.listen(this.root, "drop", this.onDrop);
    this.paint();
    // A (re)rendered view holds nothing yet: ask the kernel for the current state.
    this.sendUntilAnswered({ kind: "snapshot", request_id: this.requests.id("snapshot") });
  }

  // Kernel messages

  /** The widget's kernel restarted (or stopped): say so, and how to carry on. */
  protected override onKernelGone(): void {
    this.state.kernelGone = true;
    this.state.sending = false;
    this.state.timelineVersion++; // the running chip stops pulsing
    for (const turn of this.state.turnNumbers()) this.state.bump(turn);
    this.showError(null);
    const command = resumeCommand(this.state.chatId);
    const code = h("code", "chat-resume-command", command);
    code.title = "Run this in a notebook cell to carry on with this chat";
    this.kernelGoneNote.replaceChildren(
      h("strong", "", "Kernel restarted or stopped"),
      h("span", "", ": this view is no longer live. To carry on with this chat, run "),
      code,
      h("span", "", " in a cell."),
    );
    this.kernelGoneNote.hidden = false;
    const gone: ErrorReply = { kind: "error", request_id: null, message: "the kernel is gone" };
    for (const answer of this.uploads.values()) answer(gone);
    this.uploads.clear();
    this.update(false);
  }

  private requestSnapshot(): void {
    if (this.requests.awaiting("snapshot")) return;
    this.requests.send({ kind: "snapshot", request_id: this.requests.id("snapshot") });
  }

  protected onMessage(message: ChatKernelMessage): void {
    switch (message.kind) {
      case "image":
        return; // KernelImages takes these
      case "upload": {
        if (this.requests.take(message.request_id) === undefined) return;
        this.uploads.get(message.request_id)?.(message);
        this.uploads.delete(message.request_id);
        return;
      }
      case "frame":
        this.sinceSnapshot.push(message);
        this.applyFrame(message);
        return;
      case "snapshot": {
        if (this.requests.take(message.request_id) === undefined) return; // another view's reply
        this.state.applySnapshot(message);
        for (const frame of this.sinceSnapshot) this.state.applyFrame(frame); // newer ones only
        this.sinceSnapshot = this.requests.awaiting("snapshot")
          ? this.sinceSnapshot.filter((frame) => frame.seq > message.seq)
          : [];
        this.showError(null);
        this.update(true);
        return;
      }
      case "send":
        if (this.requests.take(message.request_id) === undefined) return;
        this.state.sending = false;
        this.state.state = "in_progress";
        this.input.value = "";
        this.tray.clear();
        this.showError(null);
        this.update(true);
        return;
      case "error": {
        const kind = this.requests.take(message.request_id);
        if (kind === undefined) return;
        if (kind === "upload" && message.request_id !== null) {
          this.uploads.get(message.request_id)?.(message);
          this.uploads.delete(message.request_id);
          return;
        }
        if (kind === "send") this.state.sending = false;
        this.showError(message.message);
        this.update(false);
        return;
      }
    }
  }

  private applyFrame(message: ChatFrameMessage): void {
    const effect = this.state.applyFrame(message);
    if (effect === "resync") this.requestSnapshot();
    this.update(true);
  }

  private showError(text: string | null): void {
    this.error.hidden = text === null;
    this.error.textContent = text ?? "";
  }

  // Painting

  private stickToEnd = false;

  /** Repaint on the next frame; ``follow``: keep the log at its end if it was near it. */
  private update(follow: boolean): void {
    if (follow && this.nearEnd()) this.stickToEnd = true;
    this.schedule();
  }

  private nearEnd(): boolean {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight <= STICK_PX;
  }

  protected paint(): void {
    const state = this.state;
    const turns = state.turnNumbers();
    const active = state.activeTurn();
    this.title.textContent = state.title || "Agent";
    this.title.title = state.title;
    this.paintStatus(active);
    if (state.timelineVersion !== this.timelineVersion) this.paintTimeline(turns, active);

    const seen = new Set<number>();
    let previous: HTMLElement = this.empty;
    for (const turn of turns) {
      seen.add(turn);
      let entry = this.groups.get(turn);
      if (entry === undefined) {
        entry = { el: createTurnGroup(turn), version: -1, key: "" };
        this.groups.set(turn, entry);
      }
      const collapsed = this.collapsed.has(turn);
      const version = state.versions.get(turn) ?? 0;
      const key = `${collapsed}:${active}:${state.state}:${state.kernelGone}`;
      if (entry.version !== version || entry.key !== key) {
        const body = entry.el.querySelector<HTMLElement>(".chat-turn-body");
        if (body !== null) fillTurnBody(body, state, turn, this.expandedCalls, this.images);
        updateTurnHeader(entry.el, state, turn, collapsed);
        entry.version = version;
        entry.key = key;
      }
      const el = entry.el;
      el.classList.toggle("is-collapsed", collapsed);
      el.classList.toggle("is-active", turn === active);
      el.classList.toggle("is-running", turn === active && state.running());
      el.classList.toggle("is-selected", turn === this.selected);
      el.classList.toggle("is-current", turn === (this.selected ?? active));
      if (previous.nextSibling !== el) previous.after(el);
      previous = el;
    }
    for (const [turn, entry] of this.groups) {
      if (!seen.has(turn)) {
        entry.el.remove();
        this.groups.delete(turn);
      }
    }
    this.empty.hidden = !state.ready || turns.length > 0;
    this.empty.textContent = state.ready ? "No messages yet." : "loading…";
    this.paintCompose();
    this.updateRootData(turns, active);
    if (this.stickToEnd) {
      this.log.scrollTop = this.log.scrollHeight;
      this.stickToEnd = false;
    }
  }

  private paintStatus(active: number | null): void {
    const state = this.state;
    const status = this.status;
    status.dataset["state"] = state.state;
    if (state.kernelGone) {
      status.className = "chat-status state-kernel-gone";
      status.textContent = "kernel restarted · not live";
      return;
    }
    status.className = `chat-status state-${state.state}`;
    if (!state.ready && state.turnNumbers().length === 0) {
      status.textContent = "loading…";
      return;
    }
    const parts = [STATE_LABELS[state.state]];
    if (state.running() && active !== null) {
      parts.push(`turn ${active}`);
      const unanswered = state.unanswered();
      if (unanswered.some((call) => state.callStatus(call) === "running")) {
        parts.push("running tools");
      } else if (state.streaming.has(active)) parts.push("writing");
      else parts.push("waiting for the model");
    } else if (state.ready && !state.live) parts.push("saved session");
    status.textContent = parts.join(" · ");
  }

  private paintTimeline(turns: number[], active: number | null): void {
    const state = this.state;
    this.timelineVersion = state.timelineVersion;
    const ctx = {
      active,
      running: state.running(),
      selected: this.selected,
      current: this.selected ?? active,
      collapsed: this.collapsed,
    };
    const nodes: HTMLElement[] = [];
    const marked = new Set<number>();
    for (const turn of turns) {
      if (state.restarts.has(turn)) {
        nodes.push(createRestartMarker(turn));
        marked.add(turn);
      }
      nodes.push(createChip(state, turn, ctx));
    }
    // A restart with no turn after it yet (the session awaits input): mark the end.
    for (const turn of state.restarts) if (!marked.has(turn)) nodes.push(createRestartMarker(turn));
    if (turns.length === 0) nodes.push(h("span", "chat-timeline-empty", "no turns yet"));
    this.chips.replaceChildren(...nodes);
    this.expandAll.hidden = this.collapsed.size === 0;
  }

  private paintCompose(): void {
    const blocked = this.state.sendBlocked();
    this.input.disabled = blocked !== null;
    this.tray.setDisabled(blocked !== null);
    this.sendButton.disabled = blocked !== null || this.tray.uploading();
    this.input.placeholder =
      blocked === null ? "Follow up… (Enter to send, Shift+Enter for a new line)" : blocked;
  }

  private updateRootData(turns: number[], active: number | null): void {
    const data = this.root.dataset;
    data["ready"] = String(this.state.ready);
    data["state"] = this.state.state;
    data["live"] = String(this.state.live && !this.state.kernelGone);
    data["kernel"] = this.state.kernelGone ? "gone" : "live";
    data["canSend"] = String(this.state.sendBlocked() === null);
    data["turns"] = turns.join(",");
    data["activeTurn"] = active === null ? "" : String(active);
    data["collapsed"] = [...this.collapsed].sort((a, b) => a - b).join(",");
    data["selectedTurn"] = this.selected === null ? "" : String(this.selected);
    data["pending"] = String(this.state.unanswered().length);
    data["attachments"] = String(this.tray.count());
    data["uploading"] = String(this.tray.uploading());
  }

  /** Repaint now, the timeline too, for interactions that then measure the layout. */
  protected override paintNow(): void {
    this.timelineVersion = -1;
    super.paintNow();
  }

  // Interaction

  private readonly onChipClick = (event: MouseEvent): void => {
    const chip = (event.target as HTMLElement).closest<HTMLElement>(".chat-turn-chip");
    const turn = Number(chip?.dataset["turn"]);
    if (chip === null || Number.isNaN(turn)) return;
    this.showTurn(turn);
  };

  /** Scroll the conversation to a turn and fold the turns after it; the last turn unfolds all. */
  private showTurn(turn: number): void {
    this.selected = turn;
    this.collapsed.clear();
    for (const t of this.state.turnNumbers()) if (t > turn) this.collapsed.add(t);
    this.collapsed.delete(turn);
    this.paintNow();
    const group = this.groups.get(turn)?.el;
    // The log is positioned, so a group's offsetTop is measured from the log's top.
    if (group !== undefined) this.log.scrollTop = group.offsetTop;
  }

  private readonly onExpandAll = (): void => {
    this.collapsed.clear();
    this.selected = null; // every turn shows again: none is singled out
    this.paintNow();
  };

  private readonly onLogClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement;
    const head = target.closest<HTMLElement>(".chat-tool-head");
    if (head !== null) {
      const id = head.closest<HTMLElement>(".chat-tool")?.dataset["callId"];
      const turn = Number(head.closest<HTMLElement>(".chat-turn")?.dataset["turn"]);
      if (id === undefined) return;
      if (this.expandedCalls.has(id)) this.expandedCalls.delete(id);
      else this.expandedCalls.add(id);
      if (!Number.isNaN(turn)) this.state.bump(turn);
      this.update(false);
      return;
    }
    const header = target.closest<HTMLElement>(".chat-turn-header");
    if (header !== null) {
      const turn = Number(header.closest<HTMLElement>(".chat-turn")?.dataset["turn"]);
      if (Number.isNaN(turn)) return;
      if (this.collapsed.has(turn)) this.collapsed.delete(turn);
      else this.collapsed.add(turn);
      this.paintNow();
    }
  };

  private readonly onKey = (event: KeyboardEvent): void => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
    // Keep Lab's notebook shortcuts (Shift+Enter runs a cell, A/B add cells...) out of the box.
    event.stopPropagation();
  };

  private readonly onSendClick = (): void => this.send();

  private send(): void {
    const text = this.input.value.trim();
    const images = this.tray.refs();
    if (text === "" && images.length === 0) return;
    if (this.state.sendBlocked() !== null || this.tray.uploading()) return;
    this.state.sending = true;
    this.selected = null; // follow the new turn: it becomes the one highlighted
    this.collapsed.clear();
    this.requests.send({ kind: "send", request_id: this.requests.id("send"), text, images });
    this.stickToEnd = true; // follow the new turn, wherever the log was scrolled
    this.update(true);
  }

  // Images: intake (picker, drop, paste), the bytes as a binary buffer of the upload

  /** Upload a file in chunks, each sent once the kernel acknowledged the one before. */
  private readonly upload = async (file: File): Promise<AttachmentRef> => {
    const uploadId = this.requests.id("upload");
    let offset = 0;
    for (;;) {
      const chunk = await file.slice(offset, offset + UPLOAD_CHUNK_BYTES).arrayBuffer();
      const reply = await this.uploadChunk(
        { kind: "upload", request_id: this.requests.id("upload"), upload_id: uploadId,
          name: file.name, size: file.size, offset },
        chunk,
      );
      if (reply.attachment !== null) return reply.attachment;
      if (reply.received <= offset) throw new Error("the kernel took no bytes; attach it again");
      offset = reply.received;
    }
  };

  private uploadChunk(request: UploadRequest, chunk: ArrayBuffer): Promise<UploadReply> {
    return new Promise((resolve, reject) => {
      this.uploads.set(request.request_id, (reply) => {
        if (reply.kind === "upload") resolve(reply);
        else reject(new Error(reply.message));
      });
      this.requests.send(request, [chunk]);
    });
  }

  private readonly onPaste = (event: ClipboardEvent): void => {
    const files = filesOf(event.clipboardData);
    if (files.length === 0) return; // pasted text goes into the box as usual
    event.preventDefault();
    this.tray.add(files);
  };

  private readonly onDragOver = (event: DragEvent): void => {
    if (!dragHasFiles(event) || this.state.sendBlocked() !== null) return;
    event.preventDefault(); // without it the browser opens the file instead of dropping it
    event.stopPropagation(); // not Lab's notebook, which would take it as a cell drag
    if (event.dataTransfer !== null) event.dataTransfer.dropEffect = "copy";
    this.root.classList.add("is-drop-target");
  };

  private readonly onDragLeave = (event: DragEvent): void => {
    if (event.relatedTarget instanceof Node && this.root.contains(event.relatedTarget)) return;
    this.root.classList.remove("is-drop-target");
  };

  private readonly onDrop = (event: DragEvent): void => {
    this.root.classList.remove("is-drop-target");
    if (!dragHasFiles(event)) return;
    event.preventDefault();
    event.stopPropagation();
    if (this.state.sendBlocked() !== null) return;
    this.tray.add(filesOf(event.dataTransfer));
  };
}
