"""The tasks pane in a side panel: the project's tasks (all kernels'), from the database.

Answers are the cell pane's messages (``boonb.widgets.tasks_protocol``). Cancel and retry
are recorded for the owning kernel (``boonb.store.requests_from_server``): a cancelled
task reads ``cancel_requested`` (the pane shows "cancelling…") until its owner carries it
out, and the frames then bring the owner's outcome. A frame's ``seq`` is its row's change
number (``tasks.change_no``, taken anew by every write of the row), and a page's ``seq``
the latest row's, so the pane tells a newer frame from an older page's copy as it does
with a kernel's numbers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, assert_never

from pydantic import BaseModel, JsonValue, ValidationError

from boonb.background.models import TaskResult
from boonb.store import Database, InvalidCursor, InvalidQuery
from boonb.store import requests_from_server as requests
from boonb.store import tasks as task_rows
from boonb.store.project_lists import interrupt_dead_tasks
from boonb.store.tasks import TaskCounts
from boonb.store.view_changes import (
    MAX_CHANGES,
    latest_task_change,
    task_counts,
    tasks_active,
    tasks_changed_after,
)
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.widgets.task_answers import list_reply, no_chat_yet, page_start, result_reply
from boonb.widgets.tasks_protocol import (
    CancelRequest,
    ListReply,
    ListRequest,
    ResultReply,
    ResultRequest,
    RetryRequest,
    TaskFrameMessage,
    TaskReply,
    TracesReply,
    TracesRequest,
    parse_tasks_request,
)

SERVER_OWNER = ""
"""A page's ``owner``: the server owns no task (every task's frames come from polling)."""


def answer(db: Database | None, content: JsonValue) -> list[BaseModel]:
    """The cell pane's reply to one request, read from (or recorded in) the database."""
    try:
        request = parse_tasks_request(content)
    except ValidationError as exc:
        return [ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))]
    if db is None:
        if isinstance(request, ListRequest):
            return [_empty(request)]
        return [ErrorReply(request_id=request.request_id, message=_NO_DATABASE)]
    try:
        match request:
            case ListRequest():
                return [_list(db, request)]
            case CancelRequest():
                asked = requests.cancel_task(db, str(request.task_id))
                return [TaskReply(request_id=request.request_id, task=asked.task)]
            case RetryRequest():
                asked = requests.retry_task(db, str(request.task_id))
                return [TaskReply(request_id=request.request_id, task=asked.task)]
            case ResultRequest():
                return [_result(db, request)]
            case TracesRequest():
                return [_traces(db, request)]
            case _:
                assert_never(request)
    except (requests.NotStored, requests.RequestRefused, InvalidQuery) as exc:
        return [ErrorReply(request_id=request.request_id, message=str(exc))]


_NO_DATABASE = "no task is stored in this project yet: no kernel has spawned one"


def _list(db: Database, request: ListRequest) -> ListReply:
    interrupt_dead_tasks(db)
    seq = latest_task_change(db)  # before the read: a frame after it may be newer
    stored = task_rows.recent(db, limit=request.limit + 1, before=page_start(request))
    found = [s.update for s in stored]
    counts = task_counts(db)
    now = datetime.now(UTC)
    return list_reply(request, found, seq=seq, counts=counts, owner=SERVER_OWNER, now=now)


def _empty(request: ListRequest) -> ListReply:
    none = TaskCounts(0, 0)
    return list_reply(request, [], seq=0, counts=none, owner=SERVER_OWNER, now=datetime.now(UTC))


def _result(db: Database, request: ResultRequest) -> ResultReply | ErrorReply:
    stored = _stored(db, request.task_id)
    # Collected now (a completed task reads "read" from here), as a kernel's View result does.
    task, result = task_rows.collect_result(db, stored.update, stored.result, now=datetime.now(UTC))
    return result_reply(
        request, task, None if result is None else TaskResult.model_validate(result)
    )


def _traces(db: Database, request: TracesRequest) -> TracesReply | ErrorReply:
    task = _stored(db, request.task_id).update
    refused = no_chat_yet(request, task)
    if refused is not None:
        return refused
    assert task.chat_id is not None  # no_chat_yet said so
    # The panel's host renders a trace viewer of a chat id (labextension/src/lab/rest.ts).
    return TracesReply(
        request_id=request.request_id,
        task_id=task.task_id,
        chat_id=task.chat_id,
        widget=str(task.chat_id),
    )


def _stored(db: Database, task_id: uuid.UUID) -> task_rows.StoredTask:
    stored = task_rows.load(db, task_id)
    if stored is None:
        raise requests.NotStored(
            f"no task {task_id} is stored in this project; it may have been another "
            "project's. Reopen the tasks panel to list them again"
        )
    return stored


# Frames.


def frames(
    db: Database | None, state: dict[str, Any] | None
) -> tuple[list[BaseModel], dict[str, Any], bool]:
    """Each task changed since the cursor, as it is now, with the header's counts after it.

    The cursor is the change number of the last row sent (``tasks.change_no``), so it
    stays one number however many rows change, and a row a kernel wrote late still has a
    number after it. A poll sends at most :data:`MAX_CHANGES` rows, and then answers live
    so the panel polls on for the rest.
    """
    if db is None:
        return [], {}, False
    interrupt_dead_tasks(db)
    if state is None:  # a panel starts: nothing to send, only where to go on from
        return [], {"n": latest_task_change(db)}, tasks_active(db)
    after = state.get("n")
    if not isinstance(after, int) or isinstance(after, bool):
        raise InvalidCursor(_BAD_CURSOR)
    changed = tasks_changed_after(db, after)
    counts = task_counts(db)
    messages: list[BaseModel] = [
        TaskFrameMessage(seq=number, frame=task, total=counts.total, running=counts.running)
        for number, task in changed
    ]
    last = changed[-1][0] if changed else after
    return messages, {"n": last}, len(changed) >= MAX_CHANGES or tasks_active(db)


_BAD_CURSOR = "after is not a tasks cursor; poll without after to start again"
