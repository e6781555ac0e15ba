"""The orchestrator's messages between the browser view and the kernel.

The view asks for the workflows (``WorkflowsRequest``) and the project's recent runs
(``RunsRequest``); it checks a form's arguments with the manager's own validation
(``ValidateRequest``) before anything runs, starts a run (``RunRequest``), cancels one
(``RunCancelRequest``), runs an ended one again with the same arguments (``RerunRequest``),
opens a run's pane (``OpenRequest``: its status, steps, log lines and result, from this
kernel or from the store) and an agent's traces (``AgentTracesRequest``). The kernel answers
with the same ``request_id`` (or the shared ``ErrorReply``) and pushes every
``workflow:status``, ``workflow:step`` and ``workflow:log`` frame of this kernel's runs,
batched, as ``RunFramesMessage``. The TypeScript side is
``labextension/src/orchestrator/protocol.ts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, TypeAdapter

from boonb.frames import WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.store.workflow_runs import MAX_RUNS_LIMIT, RunDetail, RunSummary
from boonb.widgets.protocol import ErrorReply
from boonb.workflow.models import MAX_BUDGET, ArgError, ArgsCheck, WorkflowInfo

RequestId = Annotated[str, Field(min_length=1, max_length=200)]
WorkflowName = Annotated[str, Field(min_length=1, max_length=200)]
RunFrame = Annotated[WorkflowStatus | WorkflowStep | WorkflowLog, Field(discriminator="type")]
RUNS_LIMIT = 50
"""Runs per page of the runs list (newest first)."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkflowsRequest(_Message):
    """Every workflow the manager knows (project, user, built-in), with its args schema."""

    kind: Literal["workflows"]
    request_id: RequestId
    refresh: bool = False
    """Look for workflow files again first."""


class ValidateRequest(_Message):
    """Check arguments against the workflow's declaration, without running anything."""

    kind: Literal["validate"]
    request_id: RequestId
    workflow: WorkflowName
    args: dict[str, JsonValue]


class RunRequest(_Message):
    """Start a workflow with these arguments (refused, and nothing runs, if they are invalid)."""

    kind: Literal["run"]
    request_id: RequestId
    workflow: WorkflowName
    args: dict[str, JsonValue]
    budget: StrictInt | None = Field(default=None, gt=0, le=MAX_BUDGET)
    """Tokens the run may use, at most ``MAX_BUDGET``; None for the default budget."""


class RunCancelRequest(_Message):
    """Stop a run of this kernel."""

    kind: Literal["cancel"]
    request_id: RequestId
    run_id: UUID


class RerunRequest(_Message):
    """Run an ended run's workflow again with the same arguments (cached agents are reused)."""

    kind: Literal["rerun"]
    request_id: RequestId
    run_id: UUID


class RunsRequest(_Message):
    """A page of the project's recent runs (all kernels), newest first."""

    kind: Literal["runs"]
    request_id: RequestId
    cursor: str | None = None
    """``next_cursor`` of the previous page; None for the first page."""
    limit: StrictInt = Field(default=RUNS_LIMIT, ge=1, le=MAX_RUNS_LIMIT)


class OpenRequest(_Message):
    """A run's pane as it is now: status, steps, log lines and result."""

    kind: Literal["open"]
    request_id: RequestId
    run_id: UUID


class AgentTracesRequest(_Message):
    """A trace viewer of one agent call's chat (its step's ``chat_id``)."""

    kind: Literal["traces"]
    request_id: RequestId
    chat_id: UUID


OrchestratorRequest = Annotated[
    WorkflowsRequest
    | ValidateRequest
    | RunRequest
    | RunCancelRequest
    | RerunRequest
    | RunsRequest
    | OpenRequest
    | AgentTracesRequest,
    Field(discriminator="kind"),
]
orchestrator_request_adapter: TypeAdapter[OrchestratorRequest] = TypeAdapter(
    OrchestratorRequest
)


class WorkflowsReply(_Message):
    """The workflows, by name, each with where it was found and its args schema."""

    kind: Literal["workflows"] = "workflows"
    request_id: str
    workflows: list[WorkflowInfo]


class ValidateReply(_Message):
    """The manager's verdict on the arguments, given without running anything."""

    kind: Literal["validate"] = "validate"
    request_id: str
    check: ArgsCheck


class StartedReply(_Message):
    """A run started (by Run or Re-run), or the arguments' problems when it was refused."""

    kind: Literal["started"] = "started"
    request_id: str
    workflow: str
    run_id: UUID | None
    """None when the arguments were refused: nothing runs."""
    errors: list[ArgError]
    """Why the arguments were refused; empty when the run started."""


class RunCancelReply(_Message):
    """Whether the cancel stopped a run (False: it had already ended)."""

    kind: Literal["cancel"] = "cancel"
    request_id: str
    run_id: UUID
    stopped: bool


class RunsReply(_Message):
    """A page of the project's runs (all kernels), newest first."""

    kind: Literal["runs"] = "runs"
    request_id: str
    runs: list[RunSummary]
    next_cursor: str | None
    """Pass back for the next (older) page; None on the last page."""
    session_id: str
    """This kernel's session: its runs' frames come live, the others are read from the store."""
    now: datetime
    """The kernel's clock, so elapsed times do not drift with the browser's."""
    appended: bool
    """A next page (the view adds it below), not the first."""


class OpenReply(_Message):
    """A run's pane as it is now, in answer to an ``OpenRequest``; live frames follow."""

    kind: Literal["open"] = "open"
    request_id: str
    run: RunDetail
    now: datetime


class AgentTracesReply(_Message):
    """A trace viewer for an agent's chat, for the view to render inside itself."""

    kind: Literal["traces"] = "traces"
    request_id: str
    chat_id: UUID
    widget: str
    """anywidget's reference to the viewer (``anywidget:<model id>``), for ``host.getWidget``."""


class RunFramesMessage(_Message):
    """Frames of this kernel's runs, in the order published, pushed in batches.

    A run can log thousands of lines a second; one message per ``FLUSH_S`` (not per
    frame) keeps the browser's per-message cost from holding the view up.
    """

    kind: Literal["frames"] = "frames"
    frames: list[RunFrame]


OrchestratorReply = (
    WorkflowsReply
    | ValidateReply
    | StartedReply
    | RunCancelReply
    | RunsReply
    | OpenReply
    | AgentTracesReply
    | ErrorReply
)


def parse_orchestrator_request(content: Any) -> OrchestratorRequest:
    """Validate a message from the view (raises ``pydantic.ValidationError``)."""
    return orchestrator_request_adapter.validate_python(content)
