"""Queries over ``tasks``: background subagents as rows that every kernel of a project shares.

The kernel that owns a task writes its row through the batching writer (upserts of the
columns it owns, so a cancel another process asked for in ``cancel_requested`` is never
overwritten). What other processes ask of a task, and what any kernel reads, goes through
the short connections here. See DESIGN section 7b.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from boonb.frames import TaskProgress, TaskState, TaskUpdate
from boonb.store.database import Database
from boonb.store.rows import Row, make_row

ACTIVE: tuple[TaskState, ...] = ("pending", "running")
"""States in which a task still has an owner working on it (or about to)."""

_SELECT = (
    "SELECT id, type, state, title, chat_id, parent_trace_id, owner, attempt, retry_of, "
    "created_at, started_at, finished_at, progress, error, "
    "cancel_requested AND state IN ('pending', 'running'), "
    "payload, result, parent_root_id, parent_chat_id, owner_pid, owner_host FROM tasks"
)

OWNED_JSON = frozenset({"payload", "result", "progress"})


@dataclass(frozen=True)
class StoredTask:
    """A ``tasks`` row: the task as a frame shows it, and what only its owner needs."""

    update: TaskUpdate
    payload: dict[str, Any]
    result: dict[str, Any] | None
    parent_root_id: uuid.UUID | None
    """The trace tree of the spawning tool call (``update.parent_trace_id``)."""
    parent_chat_id: uuid.UUID | None
    """The chat that spawned it; None when spawned from the notebook."""
    owner_pid: int | None
    owner_host: str | None


def owner_row(values: dict[str, Any]) -> Row:
    """An upsert of the columns the owning kernel writes (never ``cancel_requested``)."""
    if "cancel_requested" in values:
        raise ValueError("cancel_requested is asked for by others; the owner never writes it")
    return make_row("tasks", values, json_columns=OWNED_JSON & values.keys(), action="upsert")


def load(db: Database, task_id: uuid.UUID) -> StoredTask | None:
    with db.connection() as con:
        row = con.execute(f"{_SELECT} WHERE id = ?", [task_id]).fetchone()
    return None if row is None else _stored(row)


def recent(db: Database, *, limit: int = 500) -> list[StoredTask]:
    """The project's tasks, newest first."""
    with db.connection() as con:
        rows = con.execute(f"{_SELECT} ORDER BY created_at DESC, id LIMIT ?", [limit]).fetchall()
    return [_stored(row) for row in rows]


def active_of_others(db: Database, owner: str) -> list[tuple[uuid.UUID, int | None, str | None]]:
    """Pending and running tasks other kernels own: id, owner pid and host."""
    with db.connection() as con:
        rows = con.execute(
            "SELECT id, owner_pid, owner_host FROM tasks "
            "WHERE state IN ('pending', 'running') AND owner IS DISTINCT FROM ? "
            "AND owner IS NOT NULL",
            [owner],
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def mark_interrupted(db: Database, task_ids: Iterable[uuid.UUID], *, now: datetime) -> None:
    """Tasks whose owner died: ``interrupted``, unless they ended meanwhile."""
    ids = list(task_ids)
    if not ids:
        return
    with db.connection() as con:
        con.execute(
            "UPDATE tasks SET state = 'interrupted', updated_at = ?, "
            "error = coalesce(error, 'the kernel running it ended before it finished') "
            "WHERE id IN ? AND state IN ('pending', 'running')",
            [now, ids],
        )


def request_cancel(db: Database, task_id: uuid.UUID, *, now: datetime) -> bool:
    """Ask the owner to cancel an active task; False if it is no longer active."""
    with db.connection() as con:
        found = con.execute(
            "UPDATE tasks SET cancel_requested = true, updated_at = ? "
            "WHERE id = ? AND state IN ('pending', 'running') RETURNING id",
            [now, task_id],
        ).fetchall()
    return bool(found)


def cancel_requests(db: Database, owner: str) -> list[uuid.UUID]:
    """Active tasks of ``owner`` that another process asked to cancel."""
    with db.connection() as con:
        rows = con.execute(
            "SELECT id FROM tasks WHERE owner = ? AND cancel_requested "
            "AND state IN ('pending', 'running')",
            [owner],
        ).fetchall()
    return [row[0] for row in rows]


def claim_unowned(
    db: Database, *, owner: str, pid: int, host: str, now: datetime
) -> list[StoredTask]:
    """Take over pending tasks nobody owns (a retry asked for by another process), oldest first.

    One statement, so two kernels polling at once never both take a task.
    """
    with db.connection() as con:
        claimed = con.execute(
            "UPDATE tasks SET owner = ?, owner_pid = ?, owner_host = ?, updated_at = ? "
            "WHERE owner IS NULL AND state = 'pending' RETURNING id",
            [owner, pid, host, now],
        ).fetchall()
        if not claimed:
            return []
        rows = con.execute(
            f"{_SELECT} WHERE id IN ? ORDER BY created_at", [[row[0] for row in claimed]]
        ).fetchall()
    return [_stored(row) for row in rows]


def mark_read(db: Database, task_id: uuid.UUID, *, now: datetime) -> None:
    """A completed task's result was collected."""
    with db.connection() as con:
        con.execute(
            "UPDATE tasks SET state = 'read', updated_at = ? WHERE id = ? AND state = 'completed'",
            [now, task_id],
        )


def _stored(row: tuple[Any, ...]) -> StoredTask:
    (
        task_id, task_type, state, title, chat_id, parent_trace_id, owner, attempt, retry_of,
        created_at, started_at, finished_at, progress, error, cancel_requested,
        payload, result, parent_root_id, parent_chat_id, owner_pid, owner_host,
    ) = row  # fmt: skip
    update = TaskUpdate(
        task_id=task_id,
        task_type=task_type,
        state=state,
        title=title or "",
        chat_id=chat_id,
        parent_trace_id=parent_trace_id,
        owner=owner,
        attempt=attempt or 1,
        retry_of=retry_of,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        progress=_progress(progress),
        error=error,
        cancel_requested=bool(cancel_requested),
    )
    return StoredTask(
        update=update,
        payload=json.loads(payload) if payload else {},
        result=json.loads(result) if result else None,
        parent_root_id=parent_root_id,
        parent_chat_id=parent_chat_id,
        owner_pid=owner_pid,
        owner_host=owner_host,
    )


def _progress(text: str | None) -> TaskProgress | None:
    if not text:
        return None
    try:
        return _PROGRESS.validate_json(text)
    except ValidationError:
        return None  # written by another version of boonb: show no progress rather than fail


_PROGRESS: TypeAdapter[TaskProgress] = TypeAdapter(TaskProgress)
