"""Frames: the typed events that flow from agents to the store, the widgets and exporters.

One union discriminated on ``type``. Widgets receive nothing else; the TypeScript types
in ``labextension/src/frames.ts`` are generated from :func:`json_schema` by
``scripts/generate_typescript.py``.

Frames and trace records are plain slotted dataclasses. Our own code builds them on
the agent's path, where a pydantic model's validation would cost several times the
whole budget of recording a trace (see ``benchmarks/bench_store.py``). pydantic still
owns them at the edges: :data:`frame_adapter` gives their schema and JSON, and
:func:`parse_frame` validates anything that arrives from outside. Treat them as
immutable: subscribers share one instance.

Token accounting, one convention everywhere: ``input_tokens`` includes cache-read
tokens; ``cache_tokens`` is the cache-read (hit) part of it;
``cache_miss_tokens = input_tokens - cache_tokens``; ``reasoning_tokens`` is inside
``output_tokens``; ``tokens_used = input_tokens + output_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, ParamSpec, TypeVar
from uuid import UUID

from pydantic import ConfigDict, Field, JsonValue, TypeAdapter

Outcome = Literal["success", "error", "cancelled", "cached"]
"""How a call ended; ``cached`` is a workflow agent answered from the result cache (not run)."""
TraceKind = Literal["workflow", "phase", "agent", "model", "tool"]
"""What a ``tool_traces`` row stands for: a workflow run, one of its phases or agents, a model
call or a tool call. Together they form one tree per root (see :class:`TraceRecord`)."""
Segment = Literal["system", "tools", "history", "attachments"]
SessionState = Literal[
    "in_progress", "awaiting_input", "completed", "failed", "interrupted", "cancelled"
]
TaskState = Literal["pending", "running", "completed", "failed", "cancelled", "interrupted", "read"]
WorkflowState = Literal["pending", "running", "completed", "failed", "cancelled", "interrupted"]
StepState = Literal["started", "completed", "failed", "cached", "cancelled"]
NonNegative = Annotated[int, Field(ge=0)]


P = ParamSpec("P")
R = TypeVar("R")


def utcnow() -> datetime:
    return datetime.now(UTC)


def keyword_builder(cls: Callable[P, R]) -> Callable[P, R]:
    """A function that builds ``cls`` from the same keywords as ``cls(...)``, at half the cost.

    For the few records built on every call an agent makes. CPython hands the keywords
    of a call to a class to ``__init__`` packed into a dict, which costs more than the
    ``__init__``; a call to a function binds them directly. That holds up to 15 keywords:
    beyond that the compiler packs a call's keywords into a dict anyway.
    """
    if not is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls!r} is not a dataclass without __post_init__")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_MISSING": MISSING}
    arguments, body = [], []
    for f in fields(cls):
        name, value = f.name, f.name
        if f.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            arguments.append(f"{name}=_MISSING")
            value = f"_factory_{name}() if {name} is _MISSING else {name}"
        elif f.default is not MISSING:
            namespace[f"_default_{name}"] = f.default
            arguments.append(f"{name}=_default_{name}")
        else:
            arguments.append(name)
        body.append(f"self.{name} = {value}")
    lines = [f"def build(*, {', '.join(arguments)}):", "self = _new(_cls)", *body, "return self"]
    exec("\n    ".join(lines), namespace)  # as dataclasses builds __init__
    build: Callable[P, R] = namespace["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


class _Record:
    __slots__ = ()
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(
        extra="forbid", use_attribute_docstrings=True
    )


@dataclass(slots=True, kw_only=True)
class TraceRecord(_Record):
    """One row of ``tool_traces``: a model call, a tool call, or a workflow run, phase or agent.

    A tool call's row carries its own latency; the model call that asked for it
    carries the token usage.

    Rows form one tree per ``root_id``: a tool call's parent is the model call that asked
    for it; a chat's model calls hang under the tool call or workflow agent that started
    the chat (``parent_id``), or, for a chat the user started, under nothing, its root
    being the chat itself (``root_id = chat_id``). A workflow run's rows hang under its
    ``workflow`` row, whose id is the run id; its ``workflow``, ``phase`` and ``agent`` rows
    carry the run id as ``chat_id`` and turn 0 (they belong to no conversation).
    """

    id: UUID
    session_id: UUID
    chat_id: UUID
    turn_number: NonNegative
    kind: TraceKind
    tool_name: str
    call_id: str | None = None
    agent_id: str | None = None
    workflow_run_id: UUID | None = None
    parent_id: UUID | None = None
    """The row this one hangs under; None at the top of its tree."""
    root_id: UUID | None = None
    """The tree this row belongs to: its chat's id for a chat the user started, the run id
    for anything of a workflow run. None is stored as ``chat_id``."""
    input: JsonValue = None
    output: JsonValue = None
    started_at: datetime
    finished_at: datetime | None = None
    latency_ms: float | None = None
    input_tokens: int = 0
    """Prompt tokens, cache-read tokens included."""
    output_tokens: int = 0
    """Completion tokens, reasoning tokens included."""
    cache_tokens: int = 0
    """Prompt tokens read from the provider's cache (hits)."""
    cache_miss_tokens: int = 0
    """``input_tokens - cache_tokens``."""
    reasoning_tokens: int = 0
    """Reasoning tokens; already counted in ``output_tokens``."""
    tokens_used: int = 0
    """``input_tokens + output_tokens``."""
    cost_usd: float | None = None
    error: str | None = None
    outcome: Outcome = "success"


@dataclass(slots=True, kw_only=True)
class CacheSegment(_Record):
    """Cache hits of one prompt segment of one model call (a ``cache_stats`` row).

    Segments are measured in prompt order (system, tools, history, attachments);
    hits fill segments from the start of the prompt, as a prefix cache does.
    """

    segment: Segment
    tokens: NonNegative
    hit_tokens: NonNegative
    miss_tokens: NonNegative
    hash: str
    """Hash of the segment's content in this call."""
    prefix_hash: str | None = None
    """Hash of the part of this segment the chat's previous call also sent; it equals that
    call's ``hash`` unless something already sent was changed (which breaks the cache)."""


@dataclass(slots=True, kw_only=True)
class ToolTraceStart(_Record):
    """A tool call began (its trace row comes with ``tool_trace:complete``)."""

    type: Literal["tool_trace:start"] = "tool_trace:start"
    trace_id: UUID
    session_id: UUID
    chat_id: UUID
    turn_number: int
    tool_name: str
    call_id: str | None = None
    agent_id: str | None = None
    input: JsonValue = None
    started_at: datetime
    parent_id: UUID | None = None
    """The model call that asked for this tool call."""
    root_id: UUID | None = None
    """The tree the call belongs to (see :class:`TraceRecord`)."""


@dataclass(slots=True, kw_only=True)
class ToolTraceComplete(_Record):
    """A tool call ended; ``trace`` is its finished ``tool_traces`` row."""

    type: Literal["tool_trace:complete"] = "tool_trace:complete"
    trace: TraceRecord


@dataclass(slots=True, kw_only=True)
class ModelCallComplete(_Record):
    """A model call ended: its trace row and the cache hits of each prompt segment."""

    type: Literal["model_call:complete"] = "model_call:complete"
    trace: TraceRecord
    cache: list[CacheSegment] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class MessageDelta(_Record):
    """A piece of a streamed answer (or of its reasoning), as the model sends it."""

    type: Literal["message:delta"] = "message:delta"
    chat_id: UUID
    turn_number: int
    channel: Literal["content", "reasoning"] = "content"
    text: str


@dataclass(slots=True, kw_only=True)
class MessageComplete(_Record):
    """A whole message of a chat (user, assistant, tool or system), as stored."""

    type: Literal["message:complete"] = "message:complete"
    chat_id: UUID
    turn_number: int
    role: Literal["user", "assistant", "tool", "system"]
    content: str
    tool_calls: list[dict[str, JsonValue]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class TurnStart(_Record):
    """A chat's turn began: one model call and the tool calls it asks for."""

    type: Literal["turn:start"] = "turn:start"
    chat_id: UUID
    turn_number: int
    started_at: datetime


@dataclass(slots=True, kw_only=True)
class TurnComplete(_Record):
    """A chat's turn ended, with its tool-call count and token totals."""

    type: Literal["turn:complete"] = "turn:complete"
    chat_id: UUID
    turn_number: int
    finished_at: datetime
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0


@dataclass(slots=True, kw_only=True)
class SessionSaved(_Record):
    """An agent's session was saved at a turn boundary, so it can be resumed."""

    type: Literal["session_saved"] = "session_saved"
    agent_session_id: UUID
    chat_id: UUID
    state: SessionState
    turn_number: int
    last_update: datetime


@dataclass(slots=True, kw_only=True)
class SessionRestored(_Record):
    """A saved session was brought back into this kernel (``%agent resume``)."""

    type: Literal["session_restored"] = "session_restored"
    agent_session_id: UUID
    chat_id: UUID
    state: SessionState
    snapshot: dict[str, JsonValue]


@dataclass(slots=True, kw_only=True)
class WorkflowStatus(_Record):
    """Where a workflow run is: its state, phase, agents done and tokens used.

    Sent when the run starts, when an agent starts or ends, when a phase begins, and
    once when the run ends; each frame is the whole status, so a view shows the run from
    the latest frame alone.
    """

    type: Literal["workflow:status"] = "workflow:status"
    run_id: UUID
    workflow: str
    state: WorkflowState
    phase: str | None = None
    agents_done: int = 0
    """Agents that ended (completed, failed, cancelled or answered from the cache)."""
    agents_total: int = 0
    """Agents started so far (a script may start more later)."""
    tokens_used: int = 0
    """Input plus output tokens of the run's model calls so far (the project's convention)."""
    error: str | None = None
    agents_cached: int = 0
    """Agents answered from the result cache (not run); counted in ``agents_done``."""
    agents_failed: int = 0
    """Agents that failed (an error or their budget); counted in ``agents_done``."""
    budget: int | None = None
    """The run's token budget, the ceiling of ``tokens_used``."""
    started_at: datetime | None = None
    """When the run left ``pending``."""
    finished_at: datetime | None = None
    """When the run ended; None while it is pending or running."""


@dataclass(slots=True, kw_only=True)
class WorkflowStep(_Record):
    """One agent call of a workflow run started, completed, failed or was answered from the cache.

    A step is one call of an agent: an agent a script calls three times is three steps,
    told apart by ``label`` and ``trace_id``. Each frame carries the whole step, so the
    latest frame of a ``trace_id`` is the step as it is now.
    """

    type: Literal["workflow:step"] = "workflow:step"
    run_id: UUID
    agent_id: str
    """The agent's id as the script declared it (shared by all calls of that agent)."""
    phase: str | None = None
    state: StepState
    tokens_used: int = 0
    """Input plus output tokens of this call's model calls (0 while it runs, and if cached)."""
    error: str | None = None
    trace_id: UUID | None = None
    """The id of this call's ``agent`` row in the run's trace tree, and so the step's id; its
    chat's model and tool calls hang under it (``GET /boonb/api/traces/{run_id}/tree``)."""
    label: str = ""
    """A name unique within the run: the agent id for an agent called once, else the agent id
    and the call's number (``analyst #2``). The same in the trace tree (the ``agent`` row's
    ``tool_name``), the steps and the log lines."""
    call_index: int = 1
    """Which call of this agent it is in the run, from 1."""
    index: int = 0
    """The step's number in its run, from 1, in the order the script called the agents (a
    batch's in its order, whichever starts first); steps are shown in this order."""
    chat_id: UUID | None = None
    """The agent's own chat (its model and tool calls); None when answered from the cache."""
    input_preview: str | None = None
    """The first line of the agent's input, up to 200 characters."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    """None while the step runs."""
    duration_ms: float | None = None
    """Wall time from start to end; None while the step runs."""
    last_log: str | None = None
    """The last line logged about this step, set when it ends. While it runs, its last line
    is the newest ``workflow:log`` with its ``trace_id`` (each tool call it starts logs one,
    ``→ read_file``): steps are not sent again for log lines."""


@dataclass(slots=True, kw_only=True)
class WorkflowLog(_Record):
    """A line a workflow script logged (``log(...)``) or the runner wrote about a run."""

    type: Literal["workflow:log"] = "workflow:log"
    run_id: UUID
    phase: str | None = None
    agent_id: str | None = None
    message: str
    at: datetime
    seq: int = 0
    """The line's number in its run, from 1, in the order logged (0: not numbered)."""
    label: str | None = None
    """The step the line is about (its :attr:`WorkflowStep.label`); None for the script's
    own lines."""
    trace_id: UUID | None = None
    """That step's ``trace_id``."""
    level: Literal["info", "error"] = "info"
    """``error`` for a failed agent or run."""


@dataclass(slots=True, kw_only=True)
class TaskProgress(_Record):
    """How far a background subagent has got, updated as it works."""

    turn: NonNegative = 0
    """Model turns done."""
    max_turns: NonNegative
    last_tool: str | None = None
    """The name of the last tool call it started."""
    last_tool_at: datetime | None = None
    """When that tool call started."""
    tokens_used: NonNegative = 0
    """Input plus output tokens of its model calls so far (the project's convention)."""
    cost_usd: float | None = None


@dataclass(slots=True, kw_only=True)
class TaskUpdate(_Record):
    """A background task as it is now (a ``tasks`` row): sent whenever it changes.

    Each frame carries the whole task, so a view shows it from the latest frame alone.
    ``state`` ``read`` (a completed task whose result was collected) is shown as completed.
    """

    type: Literal["task:update"] = "task:update"
    task_id: UUID
    task_type: str
    state: TaskState
    title: str
    """The metadata's name, or the prompt's first line."""
    chat_id: UUID | None = None
    """The subagent's chat (its traces), once it has one."""
    parent_trace_id: UUID | None = None
    """The tool call that spawned it; None when spawned from the notebook."""
    parent_chat_id: UUID | None = None
    """The chat whose agent spawned it; None when spawned from the notebook."""
    owner: str | None = None
    """The kernel session that owns and runs it."""
    attempt: Annotated[int, Field(ge=1)] = 1
    retry_of: UUID | None = None
    """The task this one retries."""
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: TaskProgress | None = None
    error: str | None = None
    cancel_requested: bool = False
    """A cancel was asked for and the owner has not yet carried it out."""


@dataclass(slots=True, kw_only=True)
class ErrorFrame(_Record):
    """Something failed that the user should see (a tool error, a provider error)."""

    type: Literal["error"] = "error"
    scope: Literal["tool", "model", "agent", "workflow", "task", "store"]
    message: str
    chat_id: UUID | None = None
    trace_id: UUID | None = None


Frame = Annotated[
    ToolTraceStart
    | ToolTraceComplete
    | ModelCallComplete
    | MessageDelta
    | MessageComplete
    | TurnStart
    | TurnComplete
    | SessionSaved
    | SessionRestored
    | WorkflowStatus
    | WorkflowStep
    | WorkflowLog
    | TaskUpdate
    | ErrorFrame,
    Field(discriminator="type"),
]

frame_adapter: TypeAdapter[Frame] = TypeAdapter(Frame)


def parse_frame(data: str | bytes | dict[str, Any]) -> Frame:
    """Validate a frame from JSON text or a dict."""
    if isinstance(data, str | bytes):
        return frame_adapter.validate_json(data)
    return frame_adapter.validate_python(data)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the frame union (the source of the TypeScript types)."""
    return frame_adapter.json_schema(mode="serialization")
