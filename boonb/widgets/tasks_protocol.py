"""The tasks pane's messages between the browser view and the kernel.

The view asks for the first page of the tasks on every render (``ListRequest``), for the
next pages as the user scrolls, and for what a user clicks: ``CancelRequest``,
``RetryRequest``, ``ResultRequest`` (View result) and ``TracesRequest`` (the subagent's
chat in a trace viewer). The kernel answers with the same ``request_id`` (``ListReply``,
``TaskReply``, ``ResultReply``, ``TracesReply``, or the shared ``ErrorReply``) and pushes
every change of a task as ``TaskFrameMessage``: its own tasks' ``task:update`` frames from
the bus, other kernels' tasks polled from the table while any of them is active. A frame
carries the whole task, so the view keeps the latest one per task, and the header's
counts, which also cover the pages the view has not asked for. The TypeScript side of
these types is ``labextension/src/tasks/protocol.ts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from boonb.background.models import TaskSummary
from boonb.frames import TaskUpdate
from boonb.widgets.protocol import ErrorReply


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


FIRST_PAGE = 30
"""Tasks in a first page: more than the pane shows at once, so it paints from one reply."""
MAX_PAGE = 500


class PageCursor(_Message):
    """Where a page of tasks ended: the next page holds the tasks after this one."""

    created_at: datetime
    task_id: UUID


class ListRequest(_Message):
    """A page of the project's tasks (all kernels, or one chat's), newest first.

    The first page (no ``before``) also starts the live frames' counts afresh; the view
    asks for the next pages as the user scrolls towards them.
    """

    kind: Literal["list"]
    request_id: str = Field(min_length=1, max_length=200)
    before: PageCursor | None = None
    """The previous page's ``next_cursor``; None for the first page."""
    limit: int = Field(default=FIRST_PAGE, ge=1, le=MAX_PAGE)


class CancelRequest(_Message):
    """Stop a pending or running task (its owner carries the cancel out)."""

    kind: Literal["cancel"]
    request_id: str = Field(min_length=1, max_length=200)
    task_id: UUID


class RetryRequest(_Message):
    """Run a failed, cancelled or interrupted task again, as a new attempt."""

    kind: Literal["retry"]
    request_id: str = Field(min_length=1, max_length=200)
    task_id: UUID


class ResultRequest(_Message):
    """A completed task's answer and summary (View result)."""

    kind: Literal["result"]
    request_id: str = Field(min_length=1, max_length=200)
    task_id: UUID


class TracesRequest(_Message):
    """A trace viewer of the task's subagent chat, to show under its entry."""

    kind: Literal["traces"]
    request_id: str = Field(min_length=1, max_length=200)
    task_id: UUID


TasksRequest = Annotated[
    ListRequest | CancelRequest | RetryRequest | ResultRequest | TracesRequest,
    Field(discriminator="kind"),
]
tasks_request_adapter: TypeAdapter[TasksRequest] = TypeAdapter(TasksRequest)


class ListReply(_Message):
    """A page of the tasks as they are now, in answer to a ``ListRequest``."""

    kind: Literal["list"] = "list"
    request_id: str
    tasks: list[TaskUpdate]
    """Newest first; each as its latest ``task:update`` frame would show it."""
    next_cursor: PageCursor | None
    """Where the next page starts; None when this page holds the last task."""
    seq: int
    """The last ``seq`` pushed before the page was read: a frame with a higher one may be
    newer than the page's copy of its task, and the counts are as of this ``seq``."""
    total: int
    """Every task the pane shows (all pages), this kernel's and other kernels'."""
    running: int
    """How many of them are running (the header's badge)."""
    owner: str
    """This kernel's session: its tasks get live frames, the others are polled."""
    now: datetime
    """The kernel's clock, so the view's elapsed times do not drift with the browser's."""


class TaskReply(_Message):
    """The task a cancel or retry acted on, as it is now (a retry: the new attempt)."""

    kind: Literal["task"] = "task"
    request_id: str
    task: TaskUpdate


class ResultReply(_Message):
    """A completed task's answer and its summary: turns, tool calls, tokens, cost."""

    kind: Literal["result"] = "result"
    request_id: str
    task_id: UUID
    answer: str
    """The subagent's final answer (the view pretty-prints it when it is JSON)."""
    summary: TaskSummary


class TracesReply(_Message):
    """A trace viewer for the subagent's chat, for the view to render inside itself."""

    kind: Literal["traces"] = "traces"
    request_id: str
    task_id: UUID
    chat_id: UUID
    widget: str
    """anywidget's reference to the viewer (``anywidget:<model id>``), for ``host.getWidget``."""


class TaskFrameMessage(_Message):
    """A task as it is now, pushed whenever it changes, with the header's counts after it.

    The counts cover every task, also those of pages the view has not asked for yet.
    """

    kind: Literal["frame"] = "frame"
    seq: int
    """Numbers the frames in the order they are sent (a ``ListReply`` says which it follows)."""
    frame: TaskUpdate
    total: int
    running: int


TasksReply = ListReply | TaskReply | ResultReply | TracesReply | ErrorReply


def parse_tasks_request(content: Any) -> TasksRequest:
    """Validate a message from the view (raises ``pydantic.ValidationError``)."""
    return tasks_request_adapter.validate_python(content)
