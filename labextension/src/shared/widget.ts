// What both views share of the kernel side: anywidget's model and the error reply.

/** The part of anywidget's model a view uses, typed by its requests and replies. */
export interface WidgetModel<Request, KernelMessage> {
  get(name: "chat_id"): string;
  send(content: Request): void;
  on(event: "msg:custom", callback: (message: KernelMessage) => void): void;
  off(event: "msg:custom", callback: (message: KernelMessage) => void): void;
}

/** A request the kernel could not answer (request_id null: not tied to a request). */
export interface ErrorReply {
  kind: "error";
  request_id: string | null;
  message: string;
}
