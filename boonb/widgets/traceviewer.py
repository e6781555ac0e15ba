"""``TraceViewer``: a chat's traces as a live, paged, virtualised tree (an anywidget).

The view (``labextension/src/traceviewer/``) keeps no state in synced traits: on every
render it asks the kernel for the first page and the cache figures, so a refreshed page
shows the same thing. Live frames of the chat are pushed as they are published, from
whatever thread publishes them (usually the engine thread).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, assert_never
from uuid import UUID

from pydantic import ValidationError

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, ToolTraceStart
from boonb.store import StoreError
from boonb.widgets.common import ChatWidget, bundle, chat_uuid
from boonb.widgets.protocol import (
    CacheReply,
    CacheRequest,
    DetailReply,
    DetailRequest,
    ErrorReply,
    FrameMessage,
    PageReply,
    PageRequest,
    Reply,
    describe_invalid,
    parse_request,
    request_id_of,
)
from boonb.widgets.summary import summarize, summary_html, summary_text

if TYPE_CHECKING:
    from boonb.runtime import Runtime

log = logging.getLogger("boonb.widgets")

LIVE_FRAME_TYPES = frozenset({"tool_trace:start", "tool_trace:complete", "model_call:complete"})

_MISSING_BUNDLE = """
export default {
  render({ el }) {
    el.textContent = "boonb: the trace viewer's script is not built. "
      + "Run `npm ci && npm run build` in labextension/ (or reinstall boonb).";
  },
};
"""


class TraceViewer(ChatWidget):
    """The traces of one chat: turns, model and tool calls, latency, tokens and cache."""

    _esm = bundle("traceviewer.js", _MISSING_BUNDLE)
    _css = bundle("traceviewer.css", "")

    def __init__(self, chat_id: UUID | str | None = None, *, runtime: Runtime | None = None):
        if runtime is None:
            from boonb.runtime import get_runtime

            runtime = get_runtime()
        chat = chat_uuid(chat_id if chat_id is not None else runtime.last_chat_id)
        super().__init__(chat, runtime, frame_types=LIVE_FRAME_TYPES)

    # Requests from the view (on the kernel's main thread, when no cell is running).

    def answer(self, content: Any) -> Reply:
        """The reply to one request from the view; a bad request gets an ``ErrorReply``."""
        try:
            request = parse_request(content)
        except ValidationError as exc:
            return ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
        store_error: StoreError
        try:
            store = self._runtime.store
            store.writer.flush(timeout=5)  # so traces published a moment ago are in the reply
            match request:
                case PageRequest():
                    page = store.traces.page(self._chat, request.cursor, request.limit)
                    return PageReply(
                        request_id=request.request_id,
                        traces=page.traces,
                        next_cursor=page.next_cursor,
                    )
                case CacheRequest():
                    return CacheReply(
                        request_id=request.request_id,
                        turns=store.traces.turn_cache(self._chat),
                        totals=store.traces.chat_totals(self._chat),
                    )
                case DetailRequest():
                    detail = store.traces.detail(request.trace_id, chat_id=self._chat)
                    if detail is None:
                        return ErrorReply(
                            request_id=request.request_id,
                            message=f"no trace {request.trace_id} in chat {self._chat} "
                            "is stored; reopen the viewer to load its traces again",
                        )
                    return DetailReply(
                        request_id=request.request_id,
                        trace=detail.trace,
                        request=detail.request,
                    )
                case _:
                    assert_never(request)
        except StoreError as exc:
            store_error = exc
        return ErrorReply(request_id=request.request_id, message=str(store_error))

    # Live frames (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        match frame:
            case ToolTraceStart(chat_id=chat):
                pass
            case ToolTraceComplete(trace=trace) | ModelCallComplete(trace=trace):
                chat = trace.chat_id
            case _:
                return
        if chat == self._chat:
            self._send_message(FrameMessage(frame=frame).model_dump(mode="json"))

    # Static rendering, for nbviewer, GitHub and terminal IPython.

    def static(self) -> tuple[str, str]:
        summary = summarize(self._runtime.store, self._chat)
        return summary_text(summary), summary_html(summary)
