"""What crosses the worker boundary, validated on the host with pydantic.

``ApiCall`` is the union of the workflow API's operations (discriminated on ``op``): the
host validates every call a worker makes against it before a handler sees it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

_Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetSpec(_Strict):
    """A budget made by ``budget(limit, kind)`` in a script."""

    id: _Id
    limit: int = Field(gt=0)
    kind: Literal["tokens", "steps"]


class AgentSpec(_Strict):
    """An agent as ``agent(id, prompt=..., ...)`` declared it."""

    id: _Id
    prompt: str
    model: str | None = None
    tools: list[str] | None = None
    budget: BudgetSpec | None = None
    cache: bool = True


class AgentInput(_Strict):
    """One entry of ``parallel`` or ``phase``: an agent and its input (None if none given)."""

    agent: AgentSpec
    input: JsonValue = None


class AgentRegisterParams(_Strict):
    """Params of ``agent(...)``: declare an agent without running it."""

    agent: AgentSpec


class AgentRunParams(_Strict):
    """Params of ``agent.run(input)``: run one agent on one input."""

    agent: AgentSpec
    input: JsonValue = None
    budget: BudgetSpec | None = None


class ParallelParams(_Strict):
    """Params of ``parallel([...])``: run agents side by side."""

    items: list[AgentInput]
    budget: BudgetSpec | None = None


class PhaseParams(_Strict):
    """Params of ``phase(name, agents=[...])``: a named group of agents run side by side."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    items: list[AgentInput]
    budget: BudgetSpec | None = None


class LogParams(_Strict):
    """Params of ``log(message)``: a line for the run's log."""

    message: str


class AgentRegisterCall(_Strict):
    """``agent(...)``: the handler may refuse it (e.g. a duplicate id); the reply is ignored."""

    op: Literal["agent.register"]
    params: AgentRegisterParams


class AgentRunCall(_Strict):
    """``ref.run(input)``, and each agent step of ``pipeline``: the reply is the result."""

    op: Literal["agent.run"]
    params: AgentRunParams


class ParallelCall(_Strict):
    """``parallel(items, budget)``: the reply is the list of results in input order."""

    op: Literal["parallel"]
    params: ParallelParams


class PhaseCall(_Strict):
    """``phase(name, agents=..., budget)``: the reply is returned to the script as is."""

    op: Literal["phase"]
    params: PhaseParams


class LogCall(_Strict):
    """``log(msg)`` and ``print``: no reply is sent back; calls arrive in script order."""

    op: Literal["log"]
    params: LogParams


ApiCall = Annotated[
    AgentRegisterCall | AgentRunCall | ParallelCall | PhaseCall | LogCall,
    Field(discriminator="op"),
]
API_CALL: TypeAdapter[ApiCall] = TypeAdapter(ApiCall)
JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)

RunStatus = Literal["completed", "failed", "violation", "timeout", "cancelled", "killed"]


class SandboxResult(BaseModel):
    """How one run ended.

    Never raised: every outcome, however the script misbehaved, is one of these.
    """

    status: RunStatus
    result: JsonValue = None
    """The script's result (``completed`` only)."""
    error: str | None = None
    """What went wrong, for a person to read (every status but ``completed``)."""
    violation: str | None = None
    """What the policy refused (``violation`` only)."""
    steps: int = 0
    """Steps the script used: loop iterations plus calls of its own functions."""
    seccomp: bool = False
    """Whether the worker ran under the seccomp filter (False: rlimits and policy only)."""
    duration_ms: float = 0.0
    """From ``run()`` being called to the result, including waiting for a worker."""


# Frames a worker sends.


class ReadyMessage(_Strict):
    """The worker's first message: it booted, and whether seccomp is on."""

    type: Literal["ready"]
    pid: int
    seccomp: bool
    seccomp_error: str | None = None


class CallMessage(_Strict):
    """The script calls the host's API (``op`` with ``params``); ``wait`` asks for a reply."""

    type: Literal["call"]
    id: int
    wait: bool
    op: str
    params: dict[str, JsonValue]


class DoneMessage(_Strict):
    """The worker's last message: how the script ended, its result or error, and its steps."""

    type: Literal["done"]
    status: Literal["completed", "failed", "violation"]
    result: JsonValue = None
    error: str | None = None
    violation: str | None = None
    steps: int = Field(ge=0)


WorkerMessage = Annotated[ReadyMessage | CallMessage | DoneMessage, Field(discriminator="type")]
WORKER_MESSAGE: TypeAdapter[WorkerMessage] = TypeAdapter(WorkerMessage)
