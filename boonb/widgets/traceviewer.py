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
import threading
from collections.abc import Iterable
from dataclasses import fields
from typing import TYPE_CHECKING, Any, assert_never
from uuid import UUID

from pydantic import ValidationError

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, ToolTraceStart, TraceRecord
from boonb.store import MAX_LIMIT, StoreError, TraceStore
from boonb.store.projections import timeline, turns
from boonb.widgets.chat_protocol import ImageRequest
from boonb.widgets.common import ChatWidget, bundle, chat_uuid
from boonb.widgets.images import attachment_store, read_image, reply_in_background
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
    TurnFigures,
    TurnsReply,
    TurnsRequest,
    describe_invalid,
    parse_request,
    request_id_of,
)
from boonb.widgets.summary import summarize, summary_html, summary_text

if TYPE_CHECKING:
    from boonb.runtime import Runtime

log = logging.getLogger("boonb.widgets")

_CALL_KINDS = frozenset({"model", "tool"})
"""The rows a turn is made of (``projections.turns`` leaves the others out too)."""

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
        self._calls = _TurnCalls()
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
                    numbers = sorted({trace.turn_number for trace in page.traces})
                    whole = _whole_in_page(
                        numbers, first=request.cursor is None, last=page.next_cursor is None
                    )
                    self._calls.add(page.traces, whole=whole)
                    return PageReply(
                        request_id=request.request_id,
                        traces=page.traces,
                        next_cursor=page.next_cursor,
                        turns=self._figures(store.traces, numbers),
                    )
                case TurnsRequest():
                    return TurnsReply(
                        request_id=request.request_id,
                        turns=self._figures(store.traces, sorted(set(request.turn_numbers))),
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

    def _figures(self, traces: TraceStore, numbers: list[int]) -> list[TurnFigures]:
        """The figures of these turns, reading those not held whole (one query each)."""
        for number in numbers:
            if not self._calls.is_whole(number):
                self._calls.add(_turn_calls(traces, self._chat, number), whole=[number])
        found = [self._calls.figures(number) for number in numbers]
        return [figures for figures in found if figures is not None]

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


class _TurnCalls:
    """Calls of the chat by turn and id, without inputs and outputs, and their projections.

    Written from two threads (pages on the kernel's, frames on the publisher's), hence
    the lock. A call is only ever added or replaced, never removed: traces are append-only,
    so the union of what reads found and frames brought is always right. A turn is
    *whole* once all of its stored calls were read; only then are its figures right.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_turn: dict[int, dict[UUID, TraceRecord]] = {}
        self._whole: set[int] = set()

    def add(self, calls: Iterable[TraceRecord], *, whole: Iterable[int] = ()) -> None:
        """Keep stored calls; ``whole``: turns of which they are every stored call."""
        light = [_light(call) for call in calls if call.kind in _CALL_KINDS]
        with self._lock:
            for call in light:
                self._by_turn.setdefault(call.turn_number, {})[call.id] = call
            self._whole.update(whole)

    def is_whole(self, turn_number: int) -> bool:
        with self._lock:
            return turn_number in self._whole

    def complete(self, trace: TraceRecord) -> TurnFigures | None:
        """Count a completed call in; its turn's new figures, or None if the turn is not whole.

        Figures over the calls seen live alone would be wrong for a turn whose earlier
        calls were never read; the view asks for that turn's figures instead.
        """
        if trace.kind not in _CALL_KINDS:
            return None
        light = _light(trace)
        with self._lock:
            calls = self._by_turn.setdefault(light.turn_number, {})
            calls[light.id] = light
            if light.turn_number not in self._whole:
                return None
            held = list(calls.values())
        return _figures(held)

    def figures(self, turn_number: int) -> TurnFigures | None:
        """The figures of one turn, from the calls held (read it whole first)."""
        with self._lock:
            calls = list(self._by_turn.get(turn_number, {}).values())
        return _figures(calls)


def _whole_in_page(numbers: list[int], *, first: bool, last: bool) -> list[int]:
    """The turns all of whose calls a page holds (its turns are in order, ``numbers``).

    A page can cut its first turn (begun on the page before) and its last (going on in
    the next); the turns between are whole, and so is an end the page does not cut.
    """
    if not numbers:
        return []
    whole = numbers[1:-1]
    if len(numbers) == 1:
        return numbers if first and last else []
    if first:
        whole.append(numbers[0])
    if last:
        whole.append(numbers[-1])
    return whole


def _turn_calls(traces: TraceStore, chat: UUID, turn_number: int) -> list[TraceRecord]:
    """Every stored call of one turn (payloads cut as in a page)."""
    calls: list[TraceRecord] = []
    cursor = None
    while True:
        page = traces.page(chat, cursor, MAX_LIMIT, turn_number=turn_number)
        calls += page.traces
        if page.next_cursor is None:
            return calls
        cursor = page.next_cursor


_LIGHT_FIELDS = tuple(f.name for f in fields(TraceRecord) if f.name not in ("input", "output"))


def _light(call: TraceRecord) -> TraceRecord:
    """A call without its input and output (a page's call without its previews).

    The projections need neither, and calls held for the widget's lifetime should not
    keep a 50 MB tool output alive.
    """
    if type(call) is TraceRecord and call.input is None and call.output is None:
        return call
    values: dict[str, Any] = {name: getattr(call, name) for name in _LIGHT_FIELDS}
    return TraceRecord(input=None, output=None, **values)


def _figures(calls: list[TraceRecord]) -> TurnFigures | None:
    """A turn's figures; None for a turn with no model or tool call (nothing to sum)."""
    if not calls:
        return None
    [totals] = turns(calls)
    entries = timeline(calls)
    ends = [e.offset_ms + e.duration_ms for e in entries if e.duration_ms is not None]
    return TurnFigures(totals=totals, span_ms=max(ends, default=None), timeline=entries)
