"""What changed since a panel last looked: the rows the views' frames are built from.

A cell's widget gets its frames pushed by its kernel; a side panel polls the server,
which builds the same frames from the rows changed since the panel's cursor. Trace rows
are append-only, so a chat's new calls are those after a row id (DuckDB's ``rowid``, in
insert order, whenever the writer flushed them); tasks change in place, so theirs are
found by their change number (``tasks.change_no``, taken anew by every write of a row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from boonb.frames import TaskUpdate, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.store import tasks as task_rows
from boonb.store.database import Database
from boonb.store.rows import STEP_COLUMNS
from boonb.store.tasks import TaskCounts
from boonb.store.trace_records import SELECT_PAGE, PagedTrace, paged_trace
from boonb.store.workflow_runs import WorkflowRunStore, _logs, _step, status_of

MAX_CHANGES = 500
"""Rows one poll reads at most; the next poll reads on from there."""


def traces_after(
    db: Database, chat: uuid.UUID, after: int | None, *, limit: int = MAX_CHANGES
) -> tuple[list[PagedTrace], int]:
    """The chat's calls stored after row ``after`` (payloads cut as in a page), and the last row.

    ``after`` None: none, only where the chat's rows end now (where a panel starts from).
    """
    with db.connection() as con:
        if after is None:
            row = con.execute(
                "SELECT coalesce(max(rowid), -1) FROM tool_traces WHERE chat_id = ?", [chat]
            ).fetchone()
            return [], -1 if row is None else int(row[0])
        rows = con.execute(
            f"SELECT rowid, {SELECT_PAGE} FROM tool_traces "
            "WHERE chat_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            [chat, after, limit],
        ).fetchall()
    if not rows:
        return [], after
    return [paged_trace(row[1:], chat) for row in rows], int(rows[-1][0])


def chat_state(db: Database, chat: uuid.UUID) -> str | None:
    """The chat's latest saved state; None before its first was saved."""
    with db.connection() as con:
        row = con.execute(
            "SELECT arg_max(state, last_update) FROM agent_sessions WHERE chat_id = ?", [chat]
        ).fetchone()
    return None if row is None else row[0]


def chat_has_active_owner(db: Database, chat: uuid.UUID) -> bool:
    """Whether a pending or running task or workflow run is this chat's (before it saved)."""
    with db.connection() as con:
        row = con.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE chat_id = $c "
            "AND state IN ('pending', 'running')) OR EXISTS (SELECT 1 FROM chats c "
            "JOIN workflow_runs r ON r.id = c.workflow_run_id WHERE c.id = $c "
            "AND r.state IN ('pending', 'running'))",
            {"c": chat},
        ).fetchone()
    return bool(row and row[0])


def tasks_changed_after(
    db: Database, after: int, *, limit: int = MAX_CHANGES
) -> list[tuple[int, TaskUpdate]]:
    """Up to ``limit`` tasks whose row changed after change number ``after``, in change order.

    Each with its change number (``tasks.change_no``): every write of a task row takes a
    new one, so a row written late still comes after the number a panel last saw.
    """
    with db.connection() as con:
        rows = con.execute(
            f"{_TASKS_WITH_CHANGE} WHERE change_no > ? ORDER BY change_no LIMIT ?",
            [after, limit],
        ).fetchall()
    return [(int(row[-1]), task_rows._stored(row[:-1]).update) for row in rows]


# The tasks module's own SELECT (one reading of a row everywhere), and its change number.
_TASKS_WITH_CHANGE = task_rows._SELECT.removesuffix(" FROM tasks") + ", change_no FROM tasks"


def latest_task_change(db: Database) -> int:
    """The change number of the latest write of a task row; 0 with no tasks."""
    with db.connection() as con:
        row = con.execute("SELECT coalesce(max(change_no), 0) FROM tasks").fetchone()
    return 0 if row is None else int(row[0])


def task_counts(db: Database) -> TaskCounts:
    """Every task of the project, and those running."""
    with db.connection() as con:
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'running') FROM tasks"
        ).fetchone()
    return TaskCounts(0, 0) if row is None else TaskCounts(row[0], row[1])


def tasks_active(db: Database) -> bool:
    """Whether any task of the project is pending or running."""
    with db.connection() as con:
        row = con.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE state IN ('pending', 'running'))"
        ).fetchone()
    return bool(row and row[0])


def active_runs(
    db: Database, *, created_after: datetime | None = None
) -> list[tuple[uuid.UUID, datetime]]:
    """Workflow runs pending or running, and those created after ``created_after``; oldest first.

    Each with when it was created. A run that started and ended between two polls is one
    of the latter.
    """
    with db.connection() as con:
        rows = con.execute(
            "SELECT id, created_at FROM workflow_runs WHERE state IN ('pending', 'running') "
            "OR created_at > $after ORDER BY created_at, id",
            {"after": created_after},
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def latest_run_created(db: Database) -> datetime | None:
    """When the newest workflow run was created; None with no runs."""
    with db.connection() as con:
        row = con.execute("SELECT max(created_at) FROM workflow_runs").fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class RunNow:
    """A run as it stands: its status, every step, and the log lines after a number."""

    status: WorkflowStatus
    steps: list[WorkflowStep]
    logs: list[WorkflowLog]
    last_seq: int
    """The number of the run's last log line stored (0: none)."""


def run_now(
    db: Database, run: uuid.UUID, *, logs_after: int, limit: int = MAX_CHANGES
) -> RunNow | None:
    """The run's status and steps, and up to ``limit`` lines numbered after ``logs_after``."""
    summary = WorkflowRunStore(db).summary(run)
    if summary is None:
        return None
    with db.connection() as con:
        steps = con.execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM workflow_steps WHERE run_id = ? "
            "ORDER BY step_index, started_at NULLS LAST, label",
            [run],
        ).fetchall()
        logs = con.execute(
            "SELECT seq, epoch_us(logged_at), phase, agent_id, label, trace_id::VARCHAR, level, "
            "message FROM workflow_logs WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            [run, logs_after, limit],
        ).fetchall()
        last = con.execute(
            "SELECT coalesce(max(seq), 0) FROM workflow_logs WHERE run_id = ?", [run]
        ).fetchone()
    return RunNow(
        status_of(summary),
        [_step(row) for row in steps],
        _logs(run, logs),
        int(last[0]) if last else 0,
    )


__all__ = [
    "RunNow",
    "MAX_CHANGES",
    "active_runs",
    "chat_has_active_owner",
    "chat_state",
    "run_now",
    "latest_run_created",
    "latest_task_change",
    "task_counts",
    "tasks_active",
    "tasks_changed_after",
    "traces_after",
]
