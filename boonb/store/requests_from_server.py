"""What a process that runs no agents (the Jupyter server) asks of a task or a run.

The server never runs agents: it records a request as a row change, and the kernel that
owns the task or run carries it out at its next poll (DESIGN section 7b). A cancel sets
``cancel_requested``; a retry inserts a new pending task that nobody owns, which the next
kernel of the project to poll claims and runs. Each answer says what happens next.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from boonb.errors import StoreError
from boonb.frames import TaskUpdate
from boonb.store import tasks as task_rows
from boonb.store.database import Database
from boonb.store.errors import InvalidQuery
from boonb.store.project_lists import ListedRun, interrupt_dead_runs, interrupt_dead_tasks
from boonb.store.traces import parse_uuid
from boonb.store.workflow_runs import InvalidRunId, RunSummary, WorkflowRunStore

RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})
ENDED = frozenset({"completed", "failed", "cancelled", "interrupted", "read"})

# How soon an owner notices, for the answers (the setting's name: the value is per kernel).
_NEXT_POLL = "at its next poll (every BACKGROUND_POLL_INTERVAL_S seconds)"


class InvalidTaskId(InvalidQuery):
    """The task id is not a UUID."""


class NotStored(StoreError, LookupError):
    """No task (or run) with this id is stored in the project."""


class RequestRefused(StoreError):
    """The task or run is not in a state this request applies to (it ended, or was retried)."""


class TaskRequestAnswer(BaseModel):
    """What was recorded, what happens next, and the task as it now reads."""

    status: Literal["cancelling", "cancelled", "retrying"]
    message: str
    task: TaskUpdate
    """The task the request is about: for a retry, the new task (``pending``, unowned)."""


class RunRequestAnswer(BaseModel):
    """What was recorded, what happens next, and the run as it now reads."""

    status: Literal["cancelling", "cancelled"]
    message: str
    run: ListedRun


def cancel_task(db: Database, task_id: str) -> TaskRequestAnswer:
    """Ask the owner of a pending or running task to cancel it.

    A pending task nobody owns yet (a retry no kernel has claimed) is cancelled here and
    now: there is no owner to ask, and the claim is one statement, so it cannot race.
    """
    task = parse_uuid(task_id, InvalidTaskId, "task id")
    interrupt_dead_tasks(db)
    now = datetime.now(UTC)
    with db.connection() as con:
        unclaimed = con.execute(
            "UPDATE tasks SET state = 'cancelled', finished_at = ?, updated_at = ?, "
            "change_no = nextval('task_changes'), "
            "error = 'cancelled before a kernel took it' "
            "WHERE id = ? AND owner IS NULL AND state = 'pending' RETURNING id",
            [now, now, task],
        ).fetchall()
    if unclaimed:
        return TaskRequestAnswer(
            status="cancelled",
            message=f"cancelled: no kernel had taken task {task} yet, so it never ran",
            task=_task(db, task),
        )
    before = _task(db, task)
    if before.state in ENDED:
        raise _ended(before, "cancel")
    if not task_rows.request_cancel(db, task, now=now):
        raise _ended(_task(db, task), "cancel")  # it ended between the two reads
    return TaskRequestAnswer(
        status="cancelling",
        message=(
            f"cancelling: the kernel that owns task {task} (session {before.owner}) carries "
            f"it out {_NEXT_POLL}; until then the task reads cancel_requested"
        ),
        task=_task(db, task),
    )


def retry_task(db: Database, task_id: str) -> TaskRequestAnswer:
    """Queue a failed, cancelled or interrupted task again, as a new unowned pending task.

    The new task has the old one's payload, title and place in the trace tree, ``attempt``
    one more and ``retry_of`` the old id. A task is retried once: a second retry of it is
    refused (retry the newest attempt instead).
    """
    task = parse_uuid(task_id, InvalidTaskId, "task id")
    interrupt_dead_tasks(db)
    old = _task(db, task)
    if old.state not in RETRYABLE:
        hint = "" if old.state in ENDED else f"; cancel it first (POST .../tasks/{task}/cancel)"
        raise RequestRefused(
            f"task {task} is {_shown(old.state)}: only a failed, cancelled or interrupted "
            f"task can be retried{hint}"
        )
    new_id, now = uuid.uuid4(), datetime.now(UTC)
    # One statement, guarded by the absence of a retry: two requests cannot both insert.
    with db.connection() as con:
        inserted = con.execute(
            "INSERT INTO tasks (id, type, state, title, payload, parent_trace_id, "
            "parent_root_id, parent_chat_id, attempt, retry_of, created_at, updated_at, "
            "cancel_requested) "
            "SELECT ?, type, 'pending', title, payload, parent_trace_id, parent_root_id, "
            "parent_chat_id, coalesce(attempt, 1) + 1, id, ?, ?, false FROM tasks "
            "WHERE id = ? AND NOT EXISTS (SELECT 1 FROM tasks WHERE retry_of = ?) RETURNING id",
            [new_id, now, now, task, task],
        ).fetchall()
        if not inserted:
            found = con.execute(
                "SELECT id, attempt, state FROM tasks WHERE retry_of = ? "
                "ORDER BY created_at LIMIT 1",
                [task],
            ).fetchone()
    if not inserted:
        retry, attempt, state = found if found is not None else (None, None, None)
        raise RequestRefused(
            f"task {task} was already retried as task {retry} (attempt {attempt}, "
            f"{_shown(state)}); retry that one if it fails too"
        )
    return TaskRequestAnswer(
        status="retrying",
        message=(
            f"retrying as task {new_id} (attempt {old.attempt + 1}): the first kernel of this "
            f"project to poll its tasks claims and runs it, {_NEXT_POLL}. A kernel polls once "
            "it has used background tasks; if none has, run %tasks in a notebook of the project"
        ),
        task=_task(db, new_id),
    )


def cancel_run(db: Database, run_id: str) -> RunRequestAnswer:
    """Ask the kernel running a pending or running workflow run to cancel it."""
    run = parse_uuid(run_id, InvalidRunId, "run id")
    interrupt_dead_runs(db)
    before = _run(db, run)
    if before.state not in ("pending", "running"):
        raise _run_ended(before)
    with db.connection() as con:
        asked = con.execute(
            "UPDATE workflow_runs SET cancel_requested = true "
            "WHERE id = ? AND state IN ('pending', 'running') RETURNING id",
            [run],
        ).fetchall()
    if not asked:
        raise _run_ended(_run(db, run))
    return RunRequestAnswer(
        status="cancelling",
        message=(
            f"cancelling: the kernel running workflow run {run} carries it out {_NEXT_POLL}; "
            "until then the run reads cancel_requested"
        ),
        run=ListedRun(**dict(_run(db, run)), cancel_requested=True),
    )


def _task(db: Database, task: uuid.UUID) -> TaskUpdate:
    stored = task_rows.load(db, task)
    if stored is None:
        raise NotStored(
            f"no task {task} is stored in {db.path}; take task ids from GET /boonb/api/tasks"
        )
    return stored.update


def _run(db: Database, run: uuid.UUID) -> RunSummary:
    found = WorkflowRunStore(db).summary(run)
    if found is None:
        raise NotStored(
            f"no workflow run {run} is stored in {db.path}; take run ids from "
            "GET /boonb/api/orchestrator/runs"
        )
    return found


def _ended(task: TaskUpdate, what: str) -> RequestRefused:
    if task.state == "interrupted":
        return RequestRefused(
            f"task {task.task_id} cannot be {what}led: the kernel that ran it is dead, so it "
            f"reads interrupted. Retry it (POST .../tasks/{task.task_id}/retry, or in a "
            f"notebook: %tasks retry {task.task_id})"
        )
    return RequestRefused(f"task {task.task_id} has already ended ({_shown(task.state)})")


def _run_ended(run: RunSummary) -> RequestRefused:
    if run.state == "interrupted":
        return RequestRefused(
            f"workflow run {run.run_id} cannot be cancelled: the kernel that ran it is dead, "
            f"so it reads interrupted. Start it again in a notebook: %workflow run {run.workflow}"
        )
    return RequestRefused(f"workflow run {run.run_id} has already ended ({run.state})")


def _shown(state: str | None) -> str:
    return "completed" if state == "read" else str(state)


__all__ = [
    "InvalidTaskId",
    "NotStored",
    "RequestRefused",
    "RunRequestAnswer",
    "TaskRequestAnswer",
    "asked_run_cancels",
    "cancel_run",
    "cancel_task",
    "retry_task",
]


def asked_run_cancels(db: Database, session_id: uuid.UUID) -> list[uuid.UUID]:
    """Runs of the kernel ``session_id``, pending or running, another process asked to cancel.

    What that kernel's workflow manager polls for.
    """
    with db.connection() as con:
        rows = con.execute(
            "SELECT id FROM workflow_runs WHERE session_id = ? AND cancel_requested "
            "AND state IN ('pending', 'running')",
            [session_id],
        ).fetchall()
    return [row[0] for row in rows]
