"""Queries over ``tasks``: background subagents as rows that every kernel of a project shares.

The kernel that owns a task writes its row through the batching writer (upserts of the
columns it owns, so a cancel another process asked for in ``cancel_requested`` is never
overwritten). What other processes ask of a task, and what any kernel reads, goes through
the short connections here. See DESIGN section 7b.
"""

from __future__ import annotations

import dataclasses
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

_CHANGED = "change_no = nextval('task_changes')"
"""Set by every UPDATE of a task row: the change number panels poll after (schema v6)."""


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


def number_changes(con: Any, task_ids: list[uuid.UUID]) -> None:
    """Give rows the owner just upserted a new change number (in the writer's transaction).

    An upsert replaces only the columns it names, so it cannot take a number itself;
    panels find the rows changed since they last looked by this number (DESIGN 7c).
    """
    if task_ids:
        con.execute(f"UPDATE tasks SET {_CHANGED} WHERE id IN ?", [task_ids])


def load(db: Database, task_id: uuid.UUID) -> StoredTask | None:
    with db.connection() as con:
        row = con.execute(f"{_SELECT} WHERE id = ?", [task_id]).fetchone()
    return None if row is None else _stored(row)


@dataclass(frozen=True)
class TaskCursor:
    """A place in the newest-first order of tasks (``created_at``, then id, both descending).

    A page asked for ``before`` a cursor holds the tasks that come after it: older ones.
    """

    created_at: datetime
    task_id: uuid.UUID

    def precedes(self, update: TaskUpdate) -> bool:
        """Whether ``update`` comes after this place in the order (and so is on a later page)."""
        # UUIDs compare as their text does, in DuckDB as in Python: one order on both sides.
        mine = (self.created_at, str(self.task_id))
        return (update.created_at, str(update.task_id)) < mine


@dataclass(frozen=True)
class TaskCounts:
    """How many tasks there are, and how many of them are running now."""

    total: int
    running: int

    def __add__(self, other: TaskCounts) -> TaskCounts:
        return TaskCounts(total=self.total + other.total, running=self.running + other.running)


def recent(
    db: Database,
    *,
    limit: int = 500,
    spawned_by: uuid.UUID | None = None,
    before: TaskCursor | None = None,
) -> list[StoredTask]:
    """The project's tasks, newest first; those one chat spawned, those after a cursor.

    Keyset paging: a page starts right after the last task of the one before, so a task
    added meanwhile (at the top) never shifts a page.
    """
    where, params = _where(spawned_by=spawned_by)
    if before is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [before.created_at, before.created_at, before.task_id]
    sql = f"{_SELECT}{_and(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
    with db.connection() as con:
        rows = con.execute(sql, [*params, limit]).fetchall()
    return [_stored(row) for row in rows]


def count_of_others(db: Database, owner: str, *, spawned_by: uuid.UUID | None = None) -> TaskCounts:
    """How many tasks the table holds that ``owner`` does not own, and how many run."""
    where, params = _where(spawned_by=spawned_by)
    where.append("owner IS DISTINCT FROM ?")
    sql = f"SELECT count(*), count(*) FILTER (WHERE state = 'running') FROM tasks{_and(where)}"
    with db.connection() as con:
        row = con.execute(sql, [*params, owner]).fetchone()
    return TaskCounts(total=0, running=0) if row is None else TaskCounts(row[0], row[1])


def others_to_watch(
    db: Database,
    owner: str,
    *,
    also: Iterable[uuid.UUID] = (),
    spawned_by: uuid.UUID | None = None,
) -> list[StoredTask]:
    """Tasks ``owner`` does not own that are pending or running, and those named in ``also``.

    What a pane polls: the active ones may change, and those it saw active may have ended.
    """
    where, params = _where(spawned_by=spawned_by)
    where.append("owner IS DISTINCT FROM ?")
    params.append(owner)
    ids = list(also)
    if ids:
        where.append("(state IN ('pending', 'running') OR id IN ?)")
        params.append(ids)
    else:
        where.append("state IN ('pending', 'running')")
    with db.connection() as con:
        rows = con.execute(f"{_SELECT}{_and(where)} ORDER BY created_at DESC", params).fetchall()
    return [_stored(row) for row in rows]


def _where(*, spawned_by: uuid.UUID | None) -> tuple[list[str], list[Any]]:
    if spawned_by is None:
        return [], []
    return ["parent_chat_id = ?"], [spawned_by]


def _and(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def active_of_others(
    db: Database, owner: str, *, spawned_by: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, int | None, str | None]]:
    """Pending and running tasks other kernels own: id, owner pid and host."""
    where, params = _where(spawned_by=spawned_by)
    where += ["state IN ('pending', 'running')", "owner IS DISTINCT FROM ?", "owner IS NOT NULL"]
    with db.connection() as con:
        rows = con.execute(
            f"SELECT id, owner_pid, owner_host FROM tasks{_and(where)}", [*params, owner]
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def mark_interrupted(db: Database, task_ids: Iterable[uuid.UUID], *, now: datetime) -> None:
    """Tasks whose owner died: ``interrupted``, unless they ended meanwhile."""
    ids = list(task_ids)
    if not ids:
        return
    with db.connection() as con:
        con.execute(
            f"UPDATE tasks SET state = 'interrupted', updated_at = ?, {_CHANGED}, "
            "error = coalesce(error, 'the kernel running it ended before it finished') "
            "WHERE id IN ? AND state IN ('pending', 'running')",
            [now, ids],
        )


def request_cancel(db: Database, task_id: uuid.UUID, *, now: datetime) -> bool:
    """Ask the owner to cancel an active task; False if it is no longer active."""
    with db.connection() as con:
        found = con.execute(
            f"UPDATE tasks SET cancel_requested = true, updated_at = ?, {_CHANGED} "
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
        # A cancel asked before any kernel took the task is carried out here, not lost.
        con.execute(
            "UPDATE tasks SET state = 'cancelled', error = 'cancelled before it started', "
            f"finished_at = ?, updated_at = ?, {_CHANGED} "
            "WHERE owner IS NULL AND state = 'pending' AND coalesce(cancel_requested, false)",
            [now, now],
        )
        claimed = con.execute(
            "UPDATE tasks SET owner = ?, owner_pid = ?, owner_host = ?, updated_at = ?, "
            f"{_CHANGED} "
            "WHERE owner IS NULL AND state = 'pending' RETURNING id",
            [owner, pid, host, now],
        ).fetchall()
        if not claimed:
            return []
        rows = con.execute(
            f"{_SELECT} WHERE id IN ? ORDER BY created_at", [[row[0] for row in claimed]]
        ).fetchall()
    return [_stored(row) for row in rows]


def mark_failed(db: Database, task_id: uuid.UUID, *, error: str, now: datetime) -> None:
    """A task this kernel took but cannot run (a payload it cannot read)."""
    with db.connection() as con:
        con.execute(
            "UPDATE tasks SET state = 'failed', error = ?, finished_at = ?, updated_at = ?, "
            f"{_CHANGED} "
            "WHERE id = ?",
            [error, now, now, task_id],
        )


def retried_as(db: Database, task_id: uuid.UUID) -> uuid.UUID | None:
    """The task that retries ``task_id``, if one was made."""
    with db.connection() as con:
        found = con.execute(
            "SELECT id FROM tasks WHERE retry_of = ? ORDER BY created_at LIMIT 1", [task_id]
        ).fetchone()
    return None if found is None else found[0]


def mark_read(db: Database, task_id: uuid.UUID, *, now: datetime) -> None:
    """A completed task's result was collected."""
    with db.connection() as con:
        con.execute(
            f"UPDATE tasks SET state = 'read', updated_at = ?, {_CHANGED} "
            "WHERE id = ? AND state = 'completed'",
            [now, task_id],
        )


def collect_result(
    db: Database, task: TaskUpdate, result: dict[str, Any] | None, *, now: datetime
) -> tuple[TaskUpdate, dict[str, Any] | None]:
    """A stored task and its result once it completed, which this marks ``read``.

    No result (None) while it has none yet; the task then says where it stands.
    """
    if task.state not in ("completed", "read") or result is None:
        return task, None
    if task.state == "completed":
        mark_read(db, task.task_id, now=now)
    return dataclasses.replace(task, state="read"), result


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
        parent_chat_id=parent_chat_id,
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
