"""Workflow run queries: the project's runs newest first, and one run with its steps and logs.

Whatever kernel ran them: a run's row (``workflow_runs``) is written by its manager, its
steps (``workflow_steps``, one row per agent call, the step's latest frame) and log lines
(``workflow_logs``) by the writer from the run's ``workflow:step`` and ``workflow:log``
frames. So a finished run is shown again from stored data alone, after a restart too, and
as the same frames a live run sends (:class:`RunDetail`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, JsonValue

from boonb.frames import WorkflowLog, WorkflowState, WorkflowStatus, WorkflowStep
from boonb.store.cursor import TraceKey, decode_cursor, encode_cursor
from boonb.store.database import Database
from boonb.store.errors import InvalidCursor, InvalidQuery
from boonb.store.rows import STEP_COLUMNS, Row, make_row
from boonb.store.traces import parse_uuid

DEFAULT_RUNS_LIMIT = 50
MAX_RUNS_LIMIT = 200
MAX_LOG_LINES = 20_000
"""Log lines a run's detail carries at most: the last ones, ``logs_total`` says how many."""

WORKFLOW_STATES: tuple[WorkflowState, ...] = (
    "pending", "running", "completed", "failed", "cancelled", "interrupted",
)  # fmt: skip


class InvalidRunId(InvalidQuery):
    """The run id is not a UUID."""


class InvalidState(InvalidQuery):
    """The state filter is not a workflow state."""


class RunSummary(BaseModel):
    """One run as the runs list shows it (a ``workflow_runs`` row)."""

    run_id: UUID
    workflow: str
    """The workflow's name, or ``<cell>`` for a script run from a cell."""
    state: WorkflowState
    args: dict[str, JsonValue]
    tokens_used: int
    """Input plus output tokens of the run's model calls (the project's convention)."""
    budget: int | None
    agents_done: int
    agents_total: int
    agents_cached: int
    """Agents answered from the result cache; counted in ``agents_done``."""
    agents_failed: int
    error: str | None
    session_id: UUID | None
    """The kernel session that ran it."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunPage(BaseModel):
    """One page of runs, newest first (``created_at``, then id, descending)."""

    runs: list[RunSummary]
    next_cursor: str | None
    """Pass back to get the next (older) page; None on the last page."""


class RunDetail(BaseModel):
    """One run as its pane shows it: the frames a live run sends, as they stand now.

    A view folds live frames into the same shape: ``status`` is the latest
    ``workflow:status``, ``steps`` the latest ``workflow:step`` of each ``trace_id`` in
    ``index`` order, ``logs`` the ``workflow:log`` lines in ``seq`` order.
    """

    status: WorkflowStatus
    args: dict[str, JsonValue]
    result: JsonValue
    """The run's result once it completed (what ``run(args)`` returned), else None."""
    steps: list[WorkflowStep]
    logs: list[WorkflowLog]
    """The last :data:`MAX_LOG_LINES` lines at most, oldest first."""
    logs_total: int
    """Lines the run logged in all; more than ``len(logs)`` when the oldest were left out."""
    created_at: datetime
    session_id: UUID | None
    live: bool
    """True when read from the memory of the kernel running it (it may still change)."""


def run_row(
    status: WorkflowStatus,
    *,
    args: dict[str, Any],
    result: JsonValue,
    session_id: UUID,
    kernel_pid: int,
    created_at: datetime,
) -> Row:
    """The ``workflow_runs`` row of a run as ``status`` says it stands (an upsert)."""
    return make_row(
        "workflow_runs",
        {
            "id": status.run_id,
            "workflow": status.workflow,
            "source": None if status.workflow == "<cell>" else status.workflow,
            "args": args,
            "state": status.state,
            "result": result,
            "error": status.error,
            "tokens_used": status.tokens_used,
            "budget": status.budget,
            "session_id": session_id,
            "kernel_pid": kernel_pid,
            "created_at": created_at,
            "started_at": status.started_at,
            "finished_at": status.finished_at,
            "agents_done": status.agents_done,
            "agents_total": status.agents_total,
            "agents_cached": status.agents_cached,
            "agents_failed": status.agents_failed,
        },
        json_columns=frozenset({"args", "result"}),
        action="upsert",
    )


_RUN_COLUMNS = (
    "id, workflow, state, args, tokens_used, budget, agents_done, agents_total, agents_cached, "
    "agents_failed, error, session_id, created_at, started_at, finished_at"
)


class WorkflowRunStore:
    """Read-only queries over the project's workflow runs, their steps and log lines.

    ``page(cursor, limit, state, search)`` lists runs newest first; ``detail(run_id)``
    gives one run with its steps and logs. Ids, cursors and filters are validated and
    refused with an ``InvalidQuery``.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self,
        cursor: str | None = None,
        limit: int = DEFAULT_RUNS_LIMIT,
        *,
        state: str | None = None,
        search: str | None = None,
    ) -> RunPage:
        """A page of runs, newest first: of one ``state``, a workflow name holding ``search``."""
        limit = _check_limit(limit)
        if state is not None and state not in WORKFLOW_STATES:
            raise InvalidState(f"state must be one of {', '.join(WORKFLOW_STATES)}, got {state!r}")
        scope = f"runs:{state}:{search}"
        where: list[str] = ["true"]
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if search:
            where.append("contains(lower(workflow), lower(?))")
            params.append(search)
        if cursor is not None:
            key = _decode(cursor, scope, self.db.cursor_key)
            where.append("(created_at, id) < (?, ?)")
            params.extend([key.started_at, key.id])
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        with self.db.connection() as con:
            rows = con.execute(sql, [*params, limit + 1]).fetchall()
        runs = [_summary(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = runs[-1]
            # A run's sort key in the trace cursor's shape; turn_number has no meaning here.
            next_cursor = encode_cursor(
                TraceKey(0, last.created_at, last.run_id), scope=scope, secret=self.db.cursor_key
            )
        return RunPage(runs=runs, next_cursor=next_cursor)

    def summary(self, run_id: UUID | str) -> RunSummary | None:
        run = parse_uuid(run_id, InvalidRunId, "run id")
        with self.db.connection() as con:
            row = con.execute(
                f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE id = ?", [run]
            ).fetchone()
        return None if row is None else _summary(row)

    def detail(self, run_id: UUID | str) -> RunDetail | None:
        """One run with its result, steps and last log lines; None if it is not stored."""
        run = parse_uuid(run_id, InvalidRunId, "run id")
        with self.db.connection() as con:
            row = con.execute(
                f"SELECT {_RUN_COLUMNS}, result FROM workflow_runs WHERE id = ?", [run]
            ).fetchone()
            if row is None:
                return None
            steps = con.execute(
                f"SELECT {', '.join(STEP_COLUMNS)} FROM workflow_steps WHERE run_id = ? "
                "ORDER BY step_index, started_at NULLS LAST, label",
                [run],
            ).fetchall()
            total = con.execute(
                "SELECT count(*) FROM workflow_logs WHERE run_id = ?", [run]
            ).fetchone()
            logs = con.execute(_SELECT_LOGS, [run, MAX_LOG_LINES]).fetchall()
        summary = _summary(row[:-1])
        # Built from our own rows, so not validated again: a pane of 10,000 lines is read in
        # a third of the time.
        return RunDetail.model_construct(
            status=status_of(summary),
            args=summary.args,
            result=_json(row[-1]),
            steps=[_step(values) for values in steps],
            logs=_logs(run, logs),
            logs_total=int(total[0]) if total else 0,
            created_at=summary.created_at,
            session_id=summary.session_id,
            live=False,
        )

    def open_runs(self) -> list[tuple[UUID, int | None]]:
        """The runs stored as pending or running, with the pid of the kernel that ran them."""
        with self.db.connection() as con:
            rows = con.execute(
                "SELECT id, kernel_pid FROM workflow_runs WHERE state IN ('pending', 'running')"
            ).fetchall()
        return [(run_id, pid) for run_id, pid in rows]

    def mark_interrupted(self, run_ids: list[UUID]) -> None:
        """Runs whose kernel died: ``interrupted``, and their unfinished steps too."""
        if not run_ids:
            return
        with self.db.connection() as con:
            for run_id in run_ids:
                con.execute(
                    "UPDATE workflow_runs SET state = 'interrupted', "
                    "finished_at = coalesce(finished_at, now()) "
                    "WHERE id = ? AND state IN ('pending', 'running')",
                    [run_id],
                )
                con.execute(
                    "UPDATE workflow_steps SET state = 'cancelled' "
                    "WHERE run_id = ? AND state = 'started'",
                    [run_id],
                )


def _decode(cursor: str, scope: str, secret: bytes) -> TraceKey:
    try:
        return decode_cursor(cursor, scope=scope, secret=secret)
    except InvalidCursor:
        # The trace cursor's message speaks of chats; say what a runs cursor goes with.
        raise InvalidCursor(
            "cursor is not a next_cursor of this runs list (it was cut or edited, or made "
            "with another state, search or database); pass back the next_cursor of the "
            "previous page with the same state and search, or start again without a cursor"
        ) from None


def status_of(summary: RunSummary) -> WorkflowStatus:
    """The ``workflow:status`` frame a stored run would last have sent."""
    return WorkflowStatus(
        run_id=summary.run_id,
        workflow=summary.workflow,
        state=summary.state,
        agents_done=summary.agents_done,
        agents_total=summary.agents_total,
        tokens_used=summary.tokens_used,
        error=summary.error,
        agents_cached=summary.agents_cached,
        agents_failed=summary.agents_failed,
        budget=summary.budget,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
    )


def _summary(row: tuple[Any, ...]) -> RunSummary:
    (
        run_id, workflow, state, args, tokens, budget, done, total, cached, failed, error,
        session_id, created_at, started_at, finished_at,
    ) = row  # fmt: skip
    return RunSummary(
        run_id=run_id,
        workflow=workflow,
        state=state,
        args=_json(args) or {},
        tokens_used=tokens or 0,
        budget=budget,
        agents_done=done or 0,
        agents_total=total or 0,
        agents_cached=cached or 0,
        agents_failed=failed or 0,
        error=error,
        session_id=session_id,
        created_at=_utc(created_at),
        started_at=_utc(started_at),
        finished_at=_utc(finished_at),
    )


def _step(row: tuple[Any, ...]) -> WorkflowStep:
    values = dict(zip(STEP_COLUMNS, row, strict=True))
    values["index"] = values.pop("step_index")
    values["started_at"] = _utc(values["started_at"])
    values["finished_at"] = _utc(values["finished_at"])
    return WorkflowStep(**values)


# A run's lines share its id and few step ids: those come as text and become UUIDs once, and
# times as epoch microseconds, far faster to turn into datetimes than DuckDB's own values.
_SELECT_LOGS = (
    "SELECT seq, epoch_us(logged_at), phase, agent_id, label, trace_id::VARCHAR, level, message "
    "FROM (SELECT * FROM workflow_logs WHERE run_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _logs(run_id: UUID, rows: list[tuple[Any, ...]]) -> list[WorkflowLog]:
    step_ids: dict[str | None, UUID | None] = {None: None}
    lines = []
    for seq, at, phase, agent_id, label, trace_id, level, message in rows:
        if trace_id not in step_ids:
            step_ids[trace_id] = UUID(trace_id)
        lines.append(
            WorkflowLog(
                run_id=run_id,
                phase=phase,
                agent_id=agent_id,
                message=message,
                at=_EPOCH + timedelta(microseconds=at),
                seq=seq,
                label=label,
                trace_id=step_ids[trace_id],
                level=level,
            )
        )
    return lines


def _utc(value: datetime | None) -> Any:
    # DuckDB hands TIMESTAMPTZ back in the session's time zone; the frames speak UTC.
    return None if value is None else value.astimezone(UTC)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RUNS_LIMIT:
        raise InvalidQuery(f"limit must be an integer from 1 to {MAX_RUNS_LIMIT}, got {limit!r}")
    return limit


__all__ = [
    "DEFAULT_RUNS_LIMIT",
    "MAX_LOG_LINES",
    "MAX_RUNS_LIMIT",
    "InvalidRunId",
    "InvalidState",
    "RunDetail",
    "RunPage",
    "RunSummary",
    "WorkflowRunStore",
    "run_row",
    "status_of",
]
