"""The trace viewer's messages between the browser view and the kernel.

The view asks (``PageRequest``, ``CacheRequest``, ``DetailRequest``, ``TurnsRequest``), the
kernel answers with the same ``request_id`` (``PageReply``, ``CacheReply``, ``DetailReply``,
``TurnsReply``, or
``ErrorReply`` when the request could not be served), and pushes live frames
(``FrameMessage``) as they are published. Pages carry previews of large inputs and
outputs; the view asks for a trace's detail when the user expands it. A turn's header
figures and its waterfall (``TurnFigures``) are the projections' (``boonb.store.projections``),
computed by the kernel: they come with each page, and with each live frame that completes
a call, unless the kernel has not read that turn yet (it does not touch the disk on the
publishing thread); the view then asks for them (``TurnsRequest``). The view sums nothing.
Every message is a JSON object with a ``kind``. The TypeScript side of these types is
``labextension/src/traceviewer/protocol.ts``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

from boonb.frames import Frame, TraceRecord
from boonb.store import DEFAULT_LIMIT, MAX_LIMIT, ChatTotals, TurnCache
from boonb.store.projections import TimelineEntry, TurnTotals
from boonb.store.requests import SentRequest
from boonb.store.traces import PagedTrace


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PageRequest(_Message):
    """The next page of the chat's traces, in (turn_number, started_at, id) order."""

    kind: Literal["page"]
    request_id: str = Field(min_length=1, max_length=200)
    cursor: str | None = None
    """``next_cursor`` of the previous page; None for the first page."""
    limit: StrictInt = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class CacheRequest(_Message):
    """The per-turn prompt-cache figures and the chat's totals."""

    kind: Literal["cache"]
    request_id: str = Field(min_length=1, max_length=200)


class DetailRequest(_Message):
    """One trace of the chat in full: whole input and output, a model call's request."""

    kind: Literal["detail"]
    request_id: str = Field(min_length=1, max_length=200)
    trace_id: UUID


MAX_TURNS = 100
"""Turns one ``TurnsRequest`` may ask for."""


class TurnsRequest(_Message):
    """The figures of some turns: those live frames came without."""

    kind: Literal["turns"]
    request_id: str = Field(min_length=1, max_length=200)
    turn_numbers: list[Annotated[StrictInt, Field(ge=0)]] = Field(
        min_length=1, max_length=MAX_TURNS
    )


Request = Annotated[
    PageRequest | CacheRequest | DetailRequest | TurnsRequest, Field(discriminator="kind")
]
request_adapter: TypeAdapter[Request] = TypeAdapter(Request)


class TurnFigures(_Message):
    """One turn's header figures and waterfall, over all of its stored calls."""

    totals: TurnTotals
    """``projections.turns()`` of the turn's calls: calls, tokens, errors, latencies."""
    span_ms: float | None
    """Wall time from the turn's first start to its last end (the waterfall's width);
    None before any call of the turn has a duration."""
    timeline: list[TimelineEntry]
    """``projections.timeline()`` of the turn's calls: each call's start relative to the
    turn's first start, and its duration, in start order."""


class PageReply(_Message):
    """One page of a chat's traces, in answer to a ``PageRequest``."""

    kind: Literal["page"] = "page"
    request_id: str
    traces: list[PagedTrace]
    """Large inputs and outputs come as previews (``input_cut``, ``output_cut``)."""
    next_cursor: str | None
    """Pass back in the next ``PageRequest``; None on the last page."""
    turns: list[TurnFigures]
    """The figures of each turn with a trace in this page, over all of the turn's stored
    calls (a turn can span pages), in turn order."""


class CacheReply(_Message):
    """The per-turn cache figures and totals of a chat, for the cache bars."""

    kind: Literal["cache"] = "cache"
    request_id: str
    turns: list[TurnCache]
    """Turns with at least one model call, in turn order."""
    totals: ChatTotals


class DetailReply(_Message):
    """One whole trace, and for a model call the request that was sent."""

    kind: Literal["detail"] = "detail"
    request_id: str
    trace: TraceRecord
    request: SentRequest | None
    """A model call's request as it was sent; None for a tool call."""


class TurnsReply(_Message):
    """The figures of the turns a ``TurnsRequest`` asked for."""

    kind: Literal["turns"] = "turns"
    request_id: str
    turns: list[TurnFigures]
    """In turn order; a turn without a stored model or tool call is left out."""


class ErrorReply(_Message):
    """A request the kernel could not answer; ``message`` says why."""

    kind: Literal["error"] = "error"
    request_id: str | None
    """The failed request's id; None when the request was too malformed to have one."""
    message: str


class FrameMessage(_Message):
    """A live frame of the chat the viewer shows, pushed as it happens."""

    kind: Literal["frame"] = "frame"
    frame: Frame
    turn: TurnFigures | None = None
    """For a frame that completes a call, its turn's figures with that call counted in;
    None for a call that starts, or when the kernel has not read the turn's stored calls
    yet (ask with a ``TurnsRequest``)."""


Reply = PageReply | CacheReply | DetailReply | TurnsReply | ErrorReply


def parse_request(content: Any) -> Request:
    """Validate a message from the view (raises ``pydantic.ValidationError``)."""
    return request_adapter.validate_python(content)


def describe_invalid(exc: ValidationError) -> str:
    """A one-line account of what was wrong with a request."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "message"
        problems.append(f"{where}: {error['msg']}")
    return "invalid request: " + "; ".join(problems)


def request_id_of(content: Any) -> str | None:
    """The ``request_id`` of a request that failed validation, if it had a usable one."""
    if isinstance(content, dict):
        value = content.get("request_id")
        if isinstance(value, str) and 0 < len(value) <= 200:
            return value
    return None
