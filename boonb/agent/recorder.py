"""Turns what an agent does into frames (for widgets and the store) and rows (messages, chats).

Everything here runs on the agent's path, so it only builds small objects and
enqueues them; the writer thread does the disk work.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from pydantic import JsonValue

from boonb.attachments import AttachmentRef
from boonb.bus import Bus
from boonb.frames import (
    CacheSegment,
    ErrorFrame,
    Frame,
    ModelCallComplete,
    Outcome,
    ToolTraceComplete,
    ToolTraceStart,
    TraceRecord,
    keyword_builder,
)
from boonb.ids import new_id
from boonb.providers import ChatResult, Usage
from boonb.store import Row, make_row

RowSink = Callable[[Row], None]

# What every tool call builds, without the dict a call to the class would pack first.
_tool_start = keyword_builder(ToolTraceStart)
_tool_record = keyword_builder(TraceRecord)
_tool_complete = keyword_builder(ToolTraceComplete)
_now = datetime.now  # bound once, like perf_counter: each call reads both clocks twice


@dataclass(frozen=True, slots=True)
class TraceParent:
    """Where a chat hangs in the trace tree: the row it hangs under, and that row's tree.

    A chat started by a tool call takes :func:`calling_trace` (the call's row); a workflow
    agent's chat takes its ``agent`` row. Without one, a chat is the root of its own tree.
    """

    trace_id: uuid.UUID
    root_id: uuid.UUID


_calling: ContextVar[TraceParent | None] = ContextVar("boonb_calling_trace", default=None)


def calling_trace() -> TraceParent | None:
    """The tool call running in this task, for a tool that starts a chat under it; else None."""
    return _calling.get()


@dataclass(slots=True)
class OpenTrace:
    """A call under way: when it started, by the wall clock and by the monotonic one.

    Not frozen: a frozen dataclass's ``__init__`` costs several times more, and one of
    these is made for every call an agent makes.
    """

    id: uuid.UUID
    turn_number: int
    started_at: datetime
    started: float
    parent_id: uuid.UUID | None = None
    """The row this call hangs under (for a tool call, the model call that asked for it)."""

    def finish(self) -> tuple[datetime, float]:
        """The wall-clock end, and the latency as the monotonic clock measured it."""
        return _now(UTC), (perf_counter() - self.started) * 1000


class Recorder:
    """Records one chat: its calls as trace rows and frames, its messages as rows.

    ``parent`` is where the chat hangs in the trace tree (see :class:`TraceParent`); its
    model calls are recorded under ``parent.trace_id`` in ``parent.root_id``'s tree. A
    chat without one is the root of its own tree (``root_id = chat_id``).
    """

    def __init__(
        self,
        bus: Bus,
        write: RowSink,
        *,
        session_id: uuid.UUID,
        chat_id: uuid.UUID,
        agent_id: str | None = None,
        workflow_run_id: uuid.UUID | None = None,
        parent: TraceParent | None = None,
    ) -> None:
        self.bus = bus
        self.write = write
        self.session_id = session_id
        self.chat_id = chat_id
        self.agent_id = agent_id
        self.workflow_run_id = workflow_run_id
        self.parent_id = parent.trace_id if parent is not None else None
        self.root_id = parent.root_id if parent is not None else chat_id

    def publish(self, frame: Frame) -> None:
        self.bus.publish(frame)

    def open(self, turn_number: int, *, parent_id: uuid.UUID | None = None) -> OpenTrace:
        """Start timing a call; ``parent_id`` is the row it hangs under (default: the chat's)."""
        return OpenTrace(
            new_id(),
            turn_number,
            _now(UTC),
            perf_counter(),
            self.parent_id if parent_id is None else parent_id,
        )

    def calling(self, trace: OpenTrace) -> Callable[[], None]:
        """Mark ``trace`` as the tool call this task runs (see :func:`calling_trace`).

        Returns what undoes it. Each tool call runs in a task of its own, so concurrent
        calls each see their own.
        """
        token = _calling.set(TraceParent(trace.id, self.root_id))
        return lambda: _calling.reset(token)

    def tool_started(
        self, trace: OpenTrace, *, name: str, call_id: str, arguments: JsonValue
    ) -> None:
        # Only live views want this frame; with none open, not building it saves half a
        # microsecond, an eighth of recording a tool call.
        if not self.bus.wants("tool_trace:start"):
            return
        self.publish(
            _tool_start(
                trace_id=trace.id,
                session_id=self.session_id,
                chat_id=self.chat_id,
                turn_number=trace.turn_number,
                tool_name=name,
                call_id=call_id,
                agent_id=self.agent_id,
                input=arguments,
                started_at=trace.started_at,
                parent_id=trace.parent_id,
                root_id=self.root_id,
            )
        )

    def tool_finished(
        self,
        trace: OpenTrace,
        *,
        name: str,
        call_id: str,
        arguments: JsonValue,
        output: JsonValue,
        outcome: Outcome,
        error: str | None = None,
    ) -> TraceRecord:
        finished_at, latency_ms = trace.finish()
        # Built inline, as in model_finished: a shared helper taking **fields would add
        # two dict builds to every tool call (see benchmarks/bench_store.py).
        record = _tool_record(
            id=trace.id,
            session_id=self.session_id,
            chat_id=self.chat_id,
            turn_number=trace.turn_number,
            kind="tool",
            tool_name=name,
            call_id=call_id,
            agent_id=self.agent_id,
            workflow_run_id=self.workflow_run_id,
            input=arguments,
            output=output,
            started_at=trace.started_at,
            finished_at=finished_at,
            latency_ms=latency_ms,
            outcome=outcome,
        )
        # Set apart, before anyone sees the record: a 16th keyword above would make CPython
        # pack all of them into a dict (two attribute stores cost a tenth of that).
        record.parent_id = trace.parent_id
        record.root_id = self.root_id
        if error is not None:
            record.error = error
        self.publish(_tool_complete(trace=record))
        if error is not None:
            self.publish(
                ErrorFrame(
                    scope="tool",
                    message=f"{name}: {error}",
                    chat_id=self.chat_id,
                    trace_id=trace.id,
                )
            )
        return record

    def model_finished(
        self,
        trace: OpenTrace,
        *,
        model: str,
        request: JsonValue,
        result: ChatResult | None,
        outcome: Outcome,
        error: str | None = None,
        cache: list[CacheSegment] | None = None,
    ) -> TraceRecord:
        finished_at, latency_ms = trace.finish()
        usage = result.usage if result is not None else Usage()
        record = TraceRecord(
            id=trace.id,
            session_id=self.session_id,
            chat_id=self.chat_id,
            turn_number=trace.turn_number,
            kind="model",
            tool_name=model,
            agent_id=self.agent_id,
            workflow_run_id=self.workflow_run_id,
            parent_id=trace.parent_id,
            root_id=self.root_id,
            input=request,
            output=_model_output(result),
            started_at=trace.started_at,
            finished_at=finished_at,
            latency_ms=latency_ms,
            outcome=outcome,
            error=error,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_tokens=usage.cache_tokens,
            cache_miss_tokens=usage.cache_miss_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            tokens_used=usage.tokens_used,
            cost_usd=result.cost if result is not None else None,
        )
        self.publish(ModelCallComplete(trace=record, cache=cache or []))
        if error is not None:
            self.publish(
                ErrorFrame(scope="model", message=error, chat_id=self.chat_id, trace_id=trace.id)
            )
        return record

    # Rows that are not traces: the chat and its messages, for SQL over conversations.

    def chat_started(self, *, provider: str, model: str, title: str) -> None:
        self.write(
            make_row(
                "chats",
                {
                    "id": self.chat_id,
                    "session_id": self.session_id,
                    "title": title[:200],
                    "provider": provider,
                    "model": model,
                    "agent_id": self.agent_id,
                    "workflow_run_id": self.workflow_run_id,
                    "parent_id": self.parent_id,
                    "root_id": self.root_id,
                    "created_at": datetime.now(UTC),
                },
                action="upsert",
            )
        )

    def message(self, message: dict[str, Any], *, turn_number: int) -> None:
        message_id = new_id()
        self.write(
            make_row(
                "messages",
                {
                    "id": message_id,
                    "chat_id": self.chat_id,
                    "role": message["role"],
                    "turn_number": turn_number,
                    "created_at": datetime.now(UTC),
                },
            )
        )
        for position, part in enumerate(message_parts(message)):
            self.write(
                make_row(
                    "message_parts",
                    {"id": new_id(), "message_id": message_id, "position": position, **part},
                    json_columns=frozenset({"data"}),
                )
            )


def message_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``message_parts`` rows of one chat message (text, images, tool calls and results)."""
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if message.get("role") == "tool":
        return [
            {
                "type": "tool_result",
                "text": content,
                "data": {"tool_call_id": message.get("tool_call_id")},
            }
        ]
    if isinstance(content, str) and content:
        parts.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for item in content:
            stored = AttachmentRef.from_part(item)
            if stored is not None:  # a stored image: its reference, never its bytes
                parts.append(
                    {
                        "type": "image",
                        "url": f"attachment:{stored.sha256}",
                        "mime": stored.mime,
                        "size_bytes": stored.size_bytes,
                        "sha256": stored.sha256,
                        "data": {
                            "width": stored.width,
                            "height": stored.height,
                            "name": stored.name,
                        },
                    }
                )
            elif item.get("type") == "image_url":
                url = item["image_url"]["url"]
                # Data URIs are kept out of the table: the attachment store owns the bytes.
                shown = url if not url.startswith("data:") else None
                mime = url[5:].split(";", 1)[0] if url.startswith("data:") else None
                parts.append({"type": "image", "url": shown, "mime": mime})
            else:
                parts.append({"type": "text", "text": item.get("text", "")})
    for call in message.get("tool_calls") or []:
        parts.append({"type": "tool_call", "text": call["function"]["name"], "data": call})
    return parts


def _model_output(result: ChatResult | None) -> JsonValue:
    if result is None:
        return None
    return {
        "content": result.content,
        "reasoning": result.reasoning,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": json_or_text(c.arguments)}
            for c in result.tool_calls
        ],
        "finish_reason": result.finish_reason,
        "model": result.model,
    }


def json_or_text(arguments: str) -> JsonValue:
    """Tool-call arguments as the JSON value they encode, or the raw text if they are not JSON."""
    try:
        value: JsonValue = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    return value
