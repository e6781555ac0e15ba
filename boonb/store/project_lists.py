"""The project-wide lists the side panels page through: chats, tasks and workflow runs.

Whichever kernel wrote them. Each list is keyset paged newest first (``created_at``, then
id, descending), filterable by state and searchable by title (a run's workflow name), with
a signed cursor bound to its filters. Before a list is read, the pending and running rows
of kernels that died (on this host) are marked ``interrupted``, as a kernel reading them
would: a row change, so every reader sees the same (DESIGN section 7b).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel

from boonb.frames import TaskState, TaskUpdate
from boonb.store import agent_sessions
from boonb.store import tasks as task_rows
from boonb.store.cursor import TraceKey, decode_cursor, encode_cursor
from boonb.store.database import Database
from boonb.store.errors import InvalidCursor, InvalidLimit
from boonb.store.liveness import owner_gone
from boonb.store.workflow_runs import InvalidState, RunPage, RunSummary, WorkflowRunStore

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200

ChatState = Literal[
    "in_progress", "awaiting_input", "completed", "failed", "interrupted", "cancelled"
]
CHAT_STATES: tuple[str, ...] = get_args(ChatState)
TASK_STATES: tuple[str, ...] = get_args(TaskState)


class ChatSummary(BaseModel):
    """One chat as the chats list shows it."""

    chat_id: uuid.UUID
    title: str
    """The chat's title, else its saved session's, else empty."""
    state: ChatState | None
    """Its latest saved session's state; None before its first turn was saved."""
    turns: int
    """Turns with a model call."""
    tokens_used: int
    """Input plus output tokens of its model calls (the project's convention)."""
    cost_usd: float | None
    """None when no call's cost is known (e.g. a model without a price)."""
    cache_hit_rate: float | None
    """Cache-read tokens over input tokens of its model calls; None before any prompt."""
    model: str | None
    agent_id: str | None
    parent_id: uuid.UUID | None
    """The tool call (or workflow agent row) it hangs under; None for a user's own chat."""
    workflow_run_id: uuid.UUID | None
    created_at: datetime
    last_activity: datetime
    """Its latest call's end or saved state, else its creation."""


class ChatPage(BaseModel):
    """One page of chats, newest first (``created_at``, then id, descending)."""

    chats: list[ChatSummary]
    next_cursor: str | None
    """Pass back to get the next (older) page; None on the last page."""


class TaskPage(BaseModel):
    """One page of tasks, each as the ``task:update`` frame the cell's pane renders."""

    tasks: list[TaskUpdate]
    next_cursor: str | None


class ListedRun(RunSummary):
    """A run as the runs list shows it, with a cancel still to be carried out."""

    cancel_requested: bool
    """A cancel was asked for and the owning kernel has not yet carried it out."""


class ListedRunPage(BaseModel):
    """One page of runs, newest first, each with its cancel still to be carried out."""

    runs: list[ListedRun]
    next_cursor: str | None


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidLimit(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}")
    return limit


# -- chats -------------------------------------------------------------------------------

_CHATS = """
WITH saved AS (
    SELECT chat_id, arg_max(state, last_update) AS state,
        arg_max(snapshot->>'$.title', last_update) AS title, max(last_update) AS last_update
    FROM agent_sessions GROUP BY chat_id
)
SELECT c.id, coalesce(nullif(c.title, ''), s.title, '') AS title, s.state, c.model, c.agent_id,
    c.parent_id, c.workflow_run_id, c.created_at, s.last_update
FROM chats c LEFT JOIN saved s ON s.chat_id = c.id
"""

_CHAT_FIGURES = """
SELECT chat_id, count(DISTINCT turn_number), sum(tokens_used), sum(cost_usd),
    sum(input_tokens), sum(cache_tokens), max(coalesce(finished_at, started_at))
FROM tool_traces WHERE kind = 'model' AND chat_id IN ? GROUP BY chat_id
"""


def chat_page(
    db: Database,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    state: str | None = None,
    search: str | None = None,
    top_level: bool = False,
) -> ChatPage:
    """A page of the project's chats, newest first.

    ``top_level`` leaves out subagents' and workflow agents' chats.
    """
    limit = check_limit(limit)
    _check_state(state, CHAT_STATES)
    interrupt_dead_chats(db)
    scope = f"chats:{state}:{search}:{top_level}"
    where: list[str] = ["true"]
    params: list[Any] = []
    if state is not None:
        where.append("s.state = ?")
        params.append(state)
    if search:
        where.append("contains(lower(coalesce(nullif(c.title, ''), s.title, '')), lower(?))")
        params.append(search)
    if top_level:
        # A background task's chat is a subagent's even when a notebook spawned it (no parent).
        where.append(
            "c.parent_id IS NULL AND c.workflow_run_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.chat_id = c.id)"
        )
    if cursor is not None:
        key = _decode(cursor, scope, db.cursor_key, "chats", "state, search or top_level")
        where.append("(c.created_at, c.id) < (?, ?)")
        params += [key.started_at, key.id]
    sql = f"{_CHATS} WHERE {' AND '.join(where)} ORDER BY c.created_at DESC, c.id DESC LIMIT ?"
    with db.connection() as con:
        rows = con.execute(sql, [*params, limit + 1]).fetchall()
        shown = rows[:limit]
        figures = {}
        if shown:
            found = con.execute(_CHAT_FIGURES, [[row[0] for row in shown]]).fetchall()
            figures = {row[0]: row[1:] for row in found}
    chats = [_chat(row, figures.get(row[0])) for row in shown]
    next_cursor = None
    if len(rows) > limit:
        last = chats[-1]
        next_cursor = _encode(last.created_at, last.chat_id, scope, db.cursor_key)
    return ChatPage(chats=chats, next_cursor=next_cursor)


def _chat(row: tuple[Any, ...], figures: tuple[Any, ...] | None) -> ChatSummary:
    chat_id, title, state, model, agent_id, parent_id, run_id, created_at, saved_at = row
    turns, tokens, cost, prompt, cached, last_call = figures or (0, 0, None, 0, 0, None)
    times = [t for t in (created_at, saved_at, last_call) if t is not None]
    return ChatSummary(
        chat_id=chat_id,
        title=title,
        state=state if state in CHAT_STATES else None,
        turns=turns or 0,
        tokens_used=int(tokens or 0),
        cost_usd=cost,
        cache_hit_rate=(cached or 0) / prompt if prompt else None,
        model=model,
        agent_id=agent_id,
        parent_id=parent_id,
        workflow_run_id=run_id,
        created_at=_utc(created_at),
        last_activity=_utc(max(times)),
    )


def interrupt_dead_chats(db: Database) -> None:
    """Chats saved as running by a kernel of this host that died read ``interrupted``."""
    dead = [
        session_id
        for session_id, pid, host in agent_sessions.in_progress(db)
        if owner_gone(pid, host)
    ]
    if dead:
        agent_sessions.mark_interrupted(db, dead)


# -- tasks -------------------------------------------------------------------------------


def task_page(
    db: Database,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    state: str | None = None,
    search: str | None = None,
) -> TaskPage:
    """A page of the project's tasks, newest first, of one ``state``, a title holding ``search``.

    ``state`` ``completed`` holds the ``read`` ones too: a view shows them as completed.
    """
    limit = check_limit(limit)
    _check_state(state, TASK_STATES)
    interrupt_dead_tasks(db)
    scope = f"tasks:{state}:{search}"
    where: list[str] = ["true"]
    params: list[Any] = []
    if state is not None:
        where.append("state IN ?")
        params.append(["completed", "read"] if state == "completed" else [state])
    if search:
        where.append("contains(lower(coalesce(title, '')), lower(?))")
        params.append(search)
    if cursor is not None:
        key = _decode(cursor, scope, db.cursor_key, "tasks", "state or search")
        where.append("(created_at, id) < (?, ?)")
        params += [key.started_at, key.id]
    # The tasks module's own SELECT and row reader: one reading of a row everywhere.
    sql = (
        f"{task_rows._SELECT} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    with db.connection() as con:
        rows = con.execute(sql, [*params, limit + 1]).fetchall()
    tasks = [task_rows._stored(row).update for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = tasks[-1]
        next_cursor = _encode(last.created_at, last.task_id, scope, db.cursor_key)
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


def interrupt_dead_tasks(db: Database) -> list[uuid.UUID]:
    """Pending and running tasks whose owner (a kernel of this host) died: ``interrupted``.

    A pending task nobody owns yet (a retry waiting for a kernel to claim it) is left alone.
    """
    with db.connection() as con:
        rows = con.execute(
            "SELECT id, owner_pid, owner_host FROM tasks "
            "WHERE state IN ('pending', 'running') AND owner IS NOT NULL"
        ).fetchall()
    dead = [task_id for task_id, pid, host in rows if owner_gone(pid, host)]
    task_rows.mark_interrupted(db, dead, now=datetime.now(UTC))
    return dead


# -- workflow runs -----------------------------------------------------------------------


def run_page(
    db: Database,
    *,
    cursor: str | None = None,
    limit: int,
    state: str | None = None,
    search: str | None = None,
) -> ListedRunPage:
    """A page of the project's runs (as :meth:`WorkflowRunStore.page`), with cancels asked."""
    interrupt_dead_runs(db)
    page: RunPage = WorkflowRunStore(db).page(cursor, limit, state=state, search=search)
    asked: set[uuid.UUID] = set()
    if page.runs:
        with db.connection() as con:
            found = con.execute(
                "SELECT id FROM workflow_runs WHERE id IN ? AND cancel_requested "
                "AND state IN ('pending', 'running')",
                [[run.run_id for run in page.runs]],
            ).fetchall()
        asked = {row[0] for row in found}
    runs = [ListedRun(**dict(run), cancel_requested=run.run_id in asked) for run in page.runs]
    return ListedRunPage(runs=runs, next_cursor=page.next_cursor)


def interrupt_dead_runs(db: Database) -> list[uuid.UUID]:
    """Pending and running runs whose kernel (of this host) died: ``interrupted``."""
    with db.connection() as con:
        rows = con.execute(
            "SELECT r.id, r.kernel_pid, s.hostname FROM workflow_runs r "
            "LEFT JOIN sessions s ON s.id = r.session_id "
            "WHERE r.state IN ('pending', 'running')"
        ).fetchall()
    dead = [run_id for run_id, pid, host in rows if owner_gone(pid, host)]
    WorkflowRunStore(db).mark_interrupted(dead)
    return dead


# -- shared ------------------------------------------------------------------------------


def _check_state(state: str | None, known: tuple[str, ...]) -> None:
    if state is not None and state not in known:
        raise InvalidState(f"state must be one of {', '.join(known)}, got {state!r}")


def _encode(created_at: datetime, row_id: uuid.UUID, scope: str, secret: bytes) -> str:
    # A row's sort key in the trace cursor's shape; turn_number has no meaning here.
    return encode_cursor(TraceKey(0, created_at, row_id), scope=scope, secret=secret)


def _decode(cursor: str, scope: str, secret: bytes, what: str, filters: str) -> TraceKey:
    try:
        return decode_cursor(cursor, scope=scope, secret=secret)
    except InvalidCursor:
        raise InvalidCursor(
            f"cursor is not a next_cursor of this {what} list (it was cut or edited, or made "
            f"with another {filters}, or another database); pass back the next_cursor of the "
            "previous page with the same filters, or start again without a cursor"
        ) from None


def _utc(value: datetime) -> datetime:
    # DuckDB hands TIMESTAMPTZ back in the session's time zone; the views speak UTC.
    return value.astimezone(UTC)


__all__ = [
    "CHAT_STATES",
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "TASK_STATES",
    "ChatPage",
    "ChatState",
    "ChatSummary",
    "ListedRun",
    "ListedRunPage",
    "TaskPage",
    "chat_page",
    "interrupt_dead_chats",
    "interrupt_dead_runs",
    "interrupt_dead_tasks",
    "run_page",
    "task_page",
]
