"""``TraceViewer``: a chat's traces as a live, paged, virtualised tree (an anywidget).

The view (``labextension/src/traceviewer/``) keeps no state in synced traits: on every
render it asks the kernel for the first page and the cache figures, so a refreshed page
shows the same thing. Live frames of the chat are pushed as they are published, from
whatever thread publishes them (usually the engine thread).

A turn's header figures and waterfall come from the projections (``turns``, ``timeline``)
over the turn's calls. So that a completed call's turn is re-projected without touching
the disk on the publishing thread, the widget keeps the calls of the turns it has read
whole, without inputs and outputs: the turns of the pages it served (a turn cut by a page's
end is read whole then, a query of one turn), and those the view asked for because a frame
came without figures. Frames keep them current; a turn is a handful of rows, so
re-projecting one is cheap, and a 1,000-turn chat is never read in one go.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, ToolTraceStart
from boonb.store import TraceStore
from boonb.widgets.chat_protocol import ImageRequest
from boonb.widgets.common import ChatWidget, bundle, chat_uuid
from boonb.widgets.images import attachment_store, read_image, reply_in_background
from boonb.widgets.protocol import (
    ErrorReply,
    FrameMessage,
    Reply,
    TurnFigures,
    describe_invalid,
    request_id_of,
)
from boonb.widgets.summary import summarize, summary_html, summary_text
from boonb.widgets.trace_answers import TurnCalls, answer_trace_request

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
        self._calls = TurnCalls()
        super().__init__(chat, runtime, frame_types=LIVE_FRAME_TYPES)

    # Requests from the view (on the kernel's main thread, when no cell is running).

    def _on_custom_msg(self, _widget: object, content: Any, buffers: Any) -> None:
        # An image in a call's input shows as a thumbnail: the view asks for its bytes as the
        # chat view does (chat_protocol.ImageRequest), answered with a binary buffer.
        if isinstance(content, dict) and content.get("kind") == "image":
            try:
                request = ImageRequest.model_validate(content)
            except ValidationError as exc:
                reply = ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
                self._send_message(reply.model_dump(mode="json"))
                return
            store = attachment_store(self._runtime)
            reply_in_background(self, request.request_id, lambda: read_image(store, request))
            return
        super()._on_custom_msg(_widget, content, buffers)

    def answer(self, content: Any) -> Reply:
        """The reply to one request from the view; a bad request gets an ``ErrorReply``."""
        return answer_trace_request(
            content, chat=self._chat, calls=self._calls, traces=self._flushed_traces
        )

    def _flushed_traces(self) -> TraceStore:
        store = self._runtime.store
        store.writer.flush(timeout=5)  # so traces published a moment ago are in the reply
        return store.traces

    # Live frames (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        turn: TurnFigures | None = None
        match frame:
            case ToolTraceStart(chat_id=chat):
                pass
            case ToolTraceComplete(trace=trace) | ModelCallComplete(trace=trace):
                chat = trace.chat_id
                if chat == self._chat:
                    turn = self._calls.complete(trace)
            case _:
                return
        if chat == self._chat:
            self._send_message(FrameMessage(frame=frame, turn=turn).model_dump(mode="json"))

    # Static rendering, for nbviewer, GitHub and terminal IPython.

    def static(self) -> tuple[str, str]:
        summary = summarize(self._runtime.store, self._chat)
        return summary_text(summary), summary_html(summary)
