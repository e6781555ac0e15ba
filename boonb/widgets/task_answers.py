"""The tasks pane's answers that a kernel's pane and the server's side panel both give.

A cell's pane (:mod:`boonb.widgets.tasks`) reads its kernel's tasks service; a side panel
(:mod:`boonb.server.views_tasks`) reads the project database. Each finds the tasks its own
way; the replies are built here, once, so the two say the same. Nothing here imports a
widget library: the server imports it.
"""

from __future__ import annotations

from datetime import datetime

from boonb.background.models import TaskResult
from boonb.frames import TaskUpdate
from boonb.store.tasks import TaskCounts, TaskCursor
from boonb.widgets.protocol import ErrorReply
from boonb.widgets.tasks_protocol import (
    ListReply,
    ListRequest,
    PageCursor,
    ResultReply,
    ResultRequest,
    TracesRequest,
)


def page_start(request: ListRequest) -> TaskCursor | None:
    """Where the page asked for starts: after the request's cursor, or at the newest task."""
    if request.before is None:
        return None
    return TaskCursor(request.before.created_at, request.before.task_id)


def list_reply(
    request: ListRequest,
    found: list[TaskUpdate],
    *,
    seq: int,
    counts: TaskCounts,
    owner: str,
    now: datetime,
) -> ListReply:
    """A page of the tasks ``found`` from :func:`page_start` on, newest first.

    Read one more than the page's ``limit``: that one says a next page exists.
    """
    page = found[: request.limit]
    last = page[-1] if len(found) > request.limit else None
    return ListReply(
        request_id=request.request_id,
        tasks=page,
        next_cursor=(
            None if last is None else PageCursor(created_at=last.created_at, task_id=last.task_id)
        ),
        seq=seq,
        total=counts.total,
        running=counts.running,
        owner=owner,
        now=now,
    )


def result_reply(
    request: ResultRequest, task: TaskUpdate, result: TaskResult | None
) -> ResultReply | ErrorReply:
    """The task's result, or why it has none yet."""
    if result is None:
        return ErrorReply(
            request_id=request.request_id,
            message=f"task {str(task.task_id)[:8]} is {task.state}: it has no result "
            "yet; View result works once it has completed",
        )
    return ResultReply(
        request_id=request.request_id,
        task_id=request.task_id,
        answer=result.answer,
        summary=result.summary,
    )


def no_chat_yet(request: TracesRequest, task: TaskUpdate) -> ErrorReply | None:
    """Why a task's traces cannot be shown yet (it has no chat), or None when they can."""
    if task.chat_id is not None:
        return None
    return ErrorReply(
        request_id=request.request_id,
        message=f"task {str(task.task_id)[:8]} has no chat yet (it is {task.state}); "
        "its traces appear once it starts running",
    )


__all__ = ["list_reply", "no_chat_yet", "page_start", "result_reply"]
