"""The trace viewer's answers, without a kernel: what a cell's widget and the server share.

A cell's :class:`boonb.widgets.traceviewer.TraceViewer` and the Jupyter server's views
endpoint (``POST /boonb/api/views/traceviewer``) answer the same requests from the same
rows with these functions, so a chat's traces read the same in a cell and in a side panel.
Nothing here imports anywidget: the server may not load it.

A turn's header figures and waterfall come from the projections (``turns``, ``timeline``)
over the turn's calls. :class:`TurnCalls` keeps the calls of the turns read whole, without
inputs and outputs, so a completed call's turn is re-projected without touching the disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any, assert_never
from uuid import UUID

from pydantic import ValidationError

from boonb.frames import TraceRecord
from boonb.store import MAX_LIMIT, StoreError, TraceStore
from boonb.store.projections import timeline, turns
from boonb.widgets.protocol import (
    CacheReply,
    CacheRequest,
    DetailReply,
    DetailRequest,
    ErrorReply,
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

CALL_KINDS = frozenset({"model", "tool"})
"""The rows a turn is made of (``projections.turns`` leaves the others out too)."""


def answer_trace_request(
    content: Any,
    *,
    chat: UUID,
    calls: TurnCalls,
    traces: Callable[[], TraceStore],
    reraise: tuple[type[StoreError], ...] = (),
) -> Reply:
    """The reply to one request of a trace viewer of ``chat``; a bad request gets an error.

    ``traces`` gives the store to read (a kernel flushes its writer first); ``calls`` are
    the turns' calls held by the asking view's side, kept up to date here. A store error
    is the view's error reply, except those in ``reraise`` (the server answers a locked
    database with 503 and ``Retry-After``, which the panel honours).
    """
    try:
        request = parse_request(content)
    except ValidationError as exc:
        return ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
    store_error: StoreError
    try:
        store = traces()
        match request:
            case PageRequest():
                page = store.page(chat, request.cursor, request.limit)
                numbers = sorted({trace.turn_number for trace in page.traces})
                whole = whole_in_page(
                    numbers, first=request.cursor is None, last=page.next_cursor is None
                )
                calls.add(page.traces, whole=whole)
                return PageReply(
                    request_id=request.request_id,
                    traces=page.traces,
                    next_cursor=page.next_cursor,
                    turns=turn_figures(store, chat, calls, numbers),
                )
            case TurnsRequest():
                numbers = sorted(set(request.turn_numbers))
                return TurnsReply(
                    request_id=request.request_id,
                    turns=turn_figures(store, chat, calls, numbers),
                )
            case CacheRequest():
                return CacheReply(
                    request_id=request.request_id,
                    turns=store.turn_cache(chat),
                    totals=store.chat_totals(chat),
                )
            case DetailRequest():
                detail = store.detail(request.trace_id, chat_id=chat)
                if detail is None:
                    return ErrorReply(
                        request_id=request.request_id,
                        message=f"no trace {request.trace_id} in chat {chat} "
                        "is stored; reopen the viewer to load its traces again",
                    )
                return DetailReply(
                    request_id=request.request_id, trace=detail.trace, request=detail.request
                )
            case _:
                assert_never(request)
    except StoreError as exc:
        if isinstance(exc, reraise):
            raise
        store_error = exc
    return ErrorReply(request_id=request.request_id, message=str(store_error))


def turn_figures(
    traces: TraceStore, chat: UUID, calls: TurnCalls, numbers: list[int]
) -> list[TurnFigures]:
    """The figures of these turns, reading those not held whole (one query each)."""
    for number in numbers:
        if not calls.is_whole(number):
            calls.add(turn_calls(traces, chat, number), whole=[number])
    found = [calls.figures(number) for number in numbers]
    return [figures for figures in found if figures is not None]


class TurnCalls:
    """Calls of the chat by turn and id, without inputs and outputs, and their projections.

    Written from two threads in a kernel (pages on the kernel's, frames on the
    publisher's), hence the lock. A call is only ever added or replaced, never removed:
    traces are append-only, so the union of what reads found and frames brought is always
    right. A turn is *whole* once all of its stored calls were read; only then are its
    figures right.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_turn: dict[int, dict[UUID, TraceRecord]] = {}
        self._whole: set[int] = set()

    def add(self, calls: Iterable[TraceRecord], *, whole: Iterable[int] = ()) -> None:
        """Keep stored calls; ``whole``: turns of which they are every stored call."""
        light = [_light(call) for call in calls if call.kind in CALL_KINDS]
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
        if trace.kind not in CALL_KINDS:
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


def whole_in_page(numbers: list[int], *, first: bool, last: bool) -> list[int]:
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


def turn_calls(traces: TraceStore, chat: UUID, turn_number: int) -> list[TraceRecord]:
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
