"""One ``tool_traces`` row as one OpenTelemetry GenAI span (a pure function; no OTel import).

The live export and the backfill both build spans here, from the same record, so they
send the same span. Names, kinds and attributes follow the GenAI semantic conventions:

- ``workflow`` row: ``invoke_workflow {workflow}``, INTERNAL, ``gen_ai.workflow.name``.
- ``phase`` row: ``phase {name}``, INTERNAL, with no ``gen_ai.operation.name``: the
  conventions have no phase, and calling it a workflow would count each run's phases
  as workflows of their own in a backend's GenAI views.
- ``agent`` row: ``invoke_agent {label}``, INTERNAL (the agent runs in this process);
  ``gen_ai.agent.name`` is the label (``analyst #1``), ``gen_ai.agent.id`` the agent's id.
- ``model`` row: ``chat {model}``, CLIENT, with the token usage: ``input_tokens`` includes
  the cache reads (as boonb counts, and as the conventions ask), ``cache_read`` is the
  hits, ``reasoning`` is inside ``output_tokens``.
- ``tool`` row: ``execute_tool {tool}``, INTERNAL.

Every span carries ``session.id``: the id of the chat (or workflow run) its tree started
from, which Langfuse and Phoenix group traces into sessions by. (``boonb.session.id`` is
something else: the kernel session that recorded the row.)

boonb's own figures go under ``boonb.``: cost, cache segments, run, chat and row ids.
A call that failed or was cancelled gets ``error.type`` and an ERROR status with its
message; a successful one leaves the status unset, as the conventions ask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from boonb.export import content
from boonb.export.ids import span_id_of, trace_id_of
from boonb.frames import CacheSegment, TraceRecord

AttributeValue = str | int | float | bool | tuple[str, ...]
SpanKindName = Literal["internal", "client"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MAX_ERROR_CHARS = 1_000
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions release whose GenAI names these spans follow."""


@dataclass(frozen=True, slots=True)
class SpanData:
    """A span as sent: ids, name, kind, times (ns since the epoch), attributes, status."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: SpanKindName
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: str | None = None
    """The status description of a failed or cancelled call; None: the status is unset."""

    def text_chars(self) -> int:
        """Characters of text the span carries (what its encoded size grows with)."""
        return len(self.name) + sum(
            len(key) + (len(value) if isinstance(value, str) else 8)
            for key, value in self.attributes.items()
        )


@dataclass(frozen=True, slots=True)
class SpanOptions:
    """What every span of one export shares: content capture, and the secrets to scrub."""

    capture_content: bool = False
    redact: Callable[[str], str] | None = None
    """Scrubs secrets from a text; None when no secret is configured (nothing to scrub)."""
    max_attribute_chars: int = 100_000
    """Longer texts are cut (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``): one huge tool result
    must not make a whole batch too large for the endpoint."""


def span_of(
    record: TraceRecord,
    *,
    cache: Sequence[CacheSegment] = (),
    provider: str | None = None,
    conversation: UUID | None = None,
    options: SpanOptions = SpanOptions(),  # noqa: B008 - frozen, shared read-only
) -> SpanData:
    """The span of one row.

    ``cache`` is a model call's cache segments. ``provider`` is the provider of a model
    call's chat, or of an agent row's chat; ``conversation`` is an agent row's chat (see
    :mod:`boonb.export.agents`).
    """
    root = record.root_id or record.chat_id
    attributes: dict[str, AttributeValue] = {
        # What Langfuse and Phoenix group traces into sessions by: the user's chat (or
        # the workflow run) this row's tree started from.
        "session.id": str(root),
        "boonb.kind": record.kind,
        "boonb.trace.id": str(record.id),
        "boonb.session.id": str(record.session_id),
        "boonb.outcome": record.outcome,
    }
    if record.workflow_run_id is not None:
        attributes["boonb.workflow_run.id"] = str(record.workflow_run_id)
    if record.agent_id is not None:
        attributes["boonb.agent.id"] = record.agent_id
    name, kind = _BUILDERS[record.kind](_Build(record, attributes, cache, provider, options))
    if conversation is not None:  # an agent row: its chat, as its model calls told
        attributes["gen_ai.conversation.id"] = str(conversation)
    error = None
    if record.outcome in ("error", "cancelled"):
        attributes["error.type"] = "cancelled" if record.outcome == "cancelled" else _ERROR_TYPE
        error = (record.error or record.outcome)[:MAX_ERROR_CHARS]
    redact = options.redact
    if redact is not None:
        name, error = redact(name), error and redact(error)
        attributes = {k: _scrubbed(v, redact) for k, v in attributes.items()}
    limit = options.max_attribute_chars
    for key, value in attributes.items():
        if isinstance(value, str) and len(value) > limit:
            attributes[key] = value[:limit]
    start = _ns(record.started_at)
    end = _ns(record.finished_at) if record.finished_at is not None else start
    return SpanData(
        trace_id=trace_id_of(root),
        span_id=span_id_of(record.id),
        parent_span_id=span_id_of(record.parent_id) if record.parent_id is not None else None,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=max(end, start),
        attributes=attributes,
        error=error,
    )


_ERROR_TYPE = "_OTHER"
"""boonb keeps an error's message, not its class; the conventions' fallback says so."""

Attributes = dict[str, AttributeValue]


@dataclass(slots=True)
class _Build:
    """What a kind's builder reads (the row and what the exporter learnt of it) and fills."""

    record: TraceRecord
    attrs: Attributes
    cache: Sequence[CacheSegment]
    provider: str | None
    options: SpanOptions


_Builder = Callable[[_Build], tuple[str, SpanKindName]]


def _workflow(b: _Build) -> tuple[str, SpanKindName]:
    b.attrs["gen_ai.operation.name"] = "invoke_workflow"
    b.attrs["gen_ai.workflow.name"] = b.record.tool_name
    if b.options.capture_content:
        _text_content(b.attrs, b.record)
    return f"invoke_workflow {b.record.tool_name}", "internal"


def _phase(b: _Build) -> tuple[str, SpanKindName]:
    b.attrs["boonb.phase.name"] = b.record.tool_name
    return f"phase {b.record.tool_name}", "internal"


def _agent(b: _Build) -> tuple[str, SpanKindName]:
    record, attrs = b.record, b.attrs
    attrs["gen_ai.operation.name"] = "invoke_agent"
    # The label ("analyst #1") tells parallel agents apart, so it is the name; the
    # workflow's id for the agent is its id.
    attrs["gen_ai.agent.name"] = record.tool_name
    if record.agent_id is not None:
        attrs["gen_ai.agent.id"] = record.agent_id
    if b.provider is not None:
        attrs["gen_ai.provider.name"] = b.provider
    if record.outcome == "cached":
        attrs["boonb.cached"] = True
    if b.options.capture_content:
        _text_content(attrs, record)
    return f"invoke_agent {record.tool_name}", "internal"


def _model(b: _Build) -> tuple[str, SpanKindName]:
    record, attrs = b.record, b.attrs
    attrs["gen_ai.operation.name"] = "chat"
    if b.provider is not None:
        attrs["gen_ai.provider.name"] = b.provider
    attrs["gen_ai.request.model"] = record.tool_name
    attrs["gen_ai.conversation.id"] = str(record.chat_id)
    attrs["boonb.chat.id"] = str(record.chat_id)
    attrs["boonb.turn_number"] = record.turn_number
    output = record.output if isinstance(record.output, dict) else {}
    response_model, finish_reason = output.get("model"), output.get("finish_reason")
    if isinstance(response_model, str):
        attrs["gen_ai.response.model"] = response_model
    if isinstance(finish_reason, str):
        attrs["gen_ai.response.finish_reasons"] = (finish_reason,)
    attrs["gen_ai.usage.input_tokens"] = record.input_tokens
    attrs["gen_ai.usage.output_tokens"] = record.output_tokens
    attrs["gen_ai.usage.cache_read.input_tokens"] = record.cache_tokens
    attrs["gen_ai.usage.reasoning.output_tokens"] = record.reasoning_tokens
    attrs["boonb.usage.cache_miss_tokens"] = record.cache_miss_tokens
    if record.cost_usd is not None:
        attrs["boonb.cost_usd"] = record.cost_usd
    for segment in b.cache:
        attrs[f"boonb.cache.{segment.segment}.tokens"] = segment.tokens
        attrs[f"boonb.cache.{segment.segment}.hit_tokens"] = segment.hit_tokens
    if b.options.capture_content:
        request = record.input
        _json_attr(attrs, "gen_ai.input.messages", content.input_messages(request))
        _json_attr(attrs, "gen_ai.system_instructions", content.system_instructions(request))
        _json_attr(attrs, "gen_ai.output.messages", content.output_messages(record.output))
        _json_attr(attrs, "gen_ai.tool.definitions", content.tool_definitions(request))
    return f"chat {record.tool_name}", "client"


def _tool(b: _Build) -> tuple[str, SpanKindName]:
    record, attrs = b.record, b.attrs
    attrs["gen_ai.operation.name"] = "execute_tool"
    attrs["gen_ai.tool.name"] = record.tool_name
    attrs["gen_ai.tool.type"] = "function"
    if record.call_id is not None:
        attrs["gen_ai.tool.call.id"] = record.call_id
    attrs["gen_ai.conversation.id"] = str(record.chat_id)
    attrs["boonb.chat.id"] = str(record.chat_id)
    attrs["boonb.turn_number"] = record.turn_number
    if b.options.capture_content:
        if record.input is not None:
            attrs["gen_ai.tool.call.arguments"] = content.json_text(record.input)
        if record.output is not None:
            attrs["gen_ai.tool.call.result"] = content.result_text(record.output)
    return f"execute_tool {record.tool_name}", "internal"


_BUILDERS: dict[str, _Builder] = {
    "workflow": _workflow,
    "phase": _phase,
    "agent": _agent,
    "model": _model,
    "tool": _tool,
}


def _text_content(attrs: Attributes, record: TraceRecord) -> None:
    """A workflow's or agent's input and result, as one user and one assistant message."""
    _json_attr(attrs, "gen_ai.input.messages", content.text_message("user", record.input))
    _json_attr(attrs, "gen_ai.output.messages", content.text_message("assistant", record.output))


def _json_attr(attrs: Attributes, key: str, value: Any) -> None:
    if value:
        attrs[key] = content.json_text(value)


def _scrubbed(value: AttributeValue, redact: Callable[[str], str]) -> AttributeValue:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (a float timestamp would round the microseconds)."""
    if moment.tzinfo is None:  # stored values are UTC
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND * 1_000
