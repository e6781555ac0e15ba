// The requests a view has sent and not yet seen answered.

/**
 * Every open view of a widget receives every reply, so a view names its requests with
 * its own prefix and takes only the replies to them.
 */
export class PendingRequests<Request extends { kind: string; request_id: string }> {
  /** This view's prefix in request ids. */
  readonly viewId = Math.random().toString(36).slice(2, 10);
  private readonly pending = new Map<string, Request["kind"]>();
  private counter = 0;

  constructor(
    private readonly sendToKernel: (message: Request, buffers?: ArrayBuffer[]) => void,
  ) {}

  /** A fresh id for a request of this kind. */
  id(kind: Request["kind"]): string {
    this.counter += 1;
    return `${this.viewId}:${kind}:${this.counter}`;
  }

  /** Send a request (``buffers``: binary data, outside the JSON) and remember it until its
   * reply is taken. */
  send(message: Request, buffers?: ArrayBuffer[]): void {
    this.pending.set(message.request_id, message.kind);
    this.sendToKernel(message, buffers);
  }

  /** The kind of request this reply answers, now forgotten; undefined if it is not ours. */
  take(requestId: string | null): Request["kind"] | undefined {
    if (requestId === null) return undefined;
    const kind = this.pending.get(requestId);
    this.pending.delete(requestId);
    return kind;
  }

  /** Whether this request still waits for its reply. */
  isPending(requestId: string): boolean {
    return this.pending.has(requestId);
  }

  /** Whether a request of this kind still waits for its reply. */
  awaiting(kind: Request["kind"]): boolean {
    for (const pending of this.pending.values()) if (pending === kind) return true;
    return false;
  }
}
