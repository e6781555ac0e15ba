"""Schema migrations: small ordered steps that bring any older database to the current one.

``schema.sql`` is version 1 as boonb first shipped it and never changes; every later
change is a :class:`Migration` here, appended with the next version number. A new
database goes through the same steps as an old one, so the two cannot drift apart.
``schema_version`` holds one row per applied version; :func:`migrate` applies the missing
ones in one transaction, so a database is never left half-migrated.

Version 2, one trace tree (DESIGN section 3): ``tool_traces.root_id`` names the tree a row
belongs to, and ``parent_id`` the row it hangs under. The roots:

- a top-level chat's tree is rooted at the chat itself: its rows have ``root_id = chat_id``
  and its model calls have no parent (no row stands for the chat; the ``chats`` row does);
- a workflow run's tree is rooted at its ``workflow`` row, whose id is the run id, so
  every row of the run (phases, agents, their chats' calls) has ``root_id = run id``;
- a chat started by a tool call or a workflow agent takes its parent's root
  (``chats.parent_id`` / ``chats.root_id`` say where it hangs).

Rows written by version 1 get the same roots (``workflow_run_id`` if set, else the chat
id), and a tool call's ``parent_id`` becomes its turn's model call, which is what asked
for it in version 1's loop (one model call per turn, then that call's tools). Nothing
else of theirs changes.

Version 3, background tasks (DESIGN section 7b): a ``tasks`` row carries what the tasks
pane and the subagent tools show (title, the subagent's chat, where it hangs in the trace
tree and which chat spawned it, attempt and the task it retries) and what kernels
coordinate through (the owning kernel's pid and host, so a dead owner's tasks read as
``interrupted``, and ``cancel_requested``, a cancel asked of the owner by another process).
``progress`` becomes JSON (turn, max turns, last tool, tokens, cost): version 1 declared
it a fraction but nothing ever wrote a task, so no value is lost.

Version 4, the orchestrator (DESIGN sections 7 and 7c): a finished run's pane is shown again
from stored data in any kernel or the server, so a run's steps (``workflow_steps``, one row
per agent call, keyed by the call's ``agent`` row in the trace tree) and log lines
(``workflow_logs``) are stored, and ``workflow_runs`` keeps the run's agent counts. Runs
written before have no steps or lines; their counts read 0.

Version 5, the side panels (DESIGN section 7c): ``workflow_runs.cancel_requested``, a cancel
the server asked of the kernel running the run, which that kernel's manager polls for.

Version 6, the side panels' tasks frames: ``tasks.change_no``, a number from the
``task_changes`` sequence that every write of a task row takes anew (the owner's upserts
through the writer, and every UPDATE), so a panel polls the rows changed after the last
number it saw, whoever wrote them and however late. Rows written before get numbers in no
particular order; a panel starts from the largest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boonb.store.errors import DatabaseTooNew


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: its version, what it is for, and the SQL that takes the previous version to it."""

    version: int
    purpose: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "one trace tree: root_id on every trace, tool calls' parents, chats under a call",
        (
            "ALTER TABLE tool_traces ADD COLUMN IF NOT EXISTS root_id UUID",
            # Before the updates: DuckDB builds no index over a transaction's own updates.
            "CREATE INDEX IF NOT EXISTS tool_traces_root ON tool_traces (root_id)",
            "UPDATE tool_traces SET root_id = coalesce(workflow_run_id, chat_id) "
            "WHERE root_id IS NULL",
            # Version 1 asked for a turn's tools in the turn's one model call.
            """
            UPDATE tool_traces AS t SET parent_id = m.id
            FROM (
                SELECT chat_id, turn_number, arg_max(id, started_at) AS id
                FROM tool_traces WHERE kind = 'model' GROUP BY chat_id, turn_number
            ) AS m
            WHERE t.kind = 'tool' AND t.parent_id IS NULL
                AND t.chat_id = m.chat_id AND t.turn_number = m.turn_number
            """,
            "ALTER TABLE chats ADD COLUMN IF NOT EXISTS parent_id UUID",
            "ALTER TABLE chats ADD COLUMN IF NOT EXISTS root_id UUID",
            "UPDATE chats SET root_id = coalesce(workflow_run_id, id) WHERE root_id IS NULL",
        ),
    ),
    Migration(
        3,
        "background tasks: title, chats, trace parents, attempts, owners and cancel requests",
        (
            "ALTER TABLE tasks ALTER progress SET DATA TYPE JSON USING NULL",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS title VARCHAR",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS chat_id UUID",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS parent_trace_id UUID",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS parent_root_id UUID",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS parent_chat_id UUID",
            # DuckDB cannot add a NOT NULL column with IF NOT EXISTS; the defaults fill them.
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS attempt INTEGER DEFAULT 1",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS retry_of UUID",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS owner_pid INTEGER",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS owner_host VARCHAR",
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS cancel_requested BOOLEAN DEFAULT false",
        ),
    ),
    Migration(
        4,
        "orchestrator: a run's steps and log lines, and its agent counts",
        (
            "ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS agents_done INTEGER DEFAULT 0",
            "ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS agents_total INTEGER DEFAULT 0",
            "ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS agents_cached INTEGER DEFAULT 0",
            "ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS agents_failed INTEGER DEFAULT 0",
            # The runs list pages newest first.
            "CREATE INDEX IF NOT EXISTS workflow_runs_created ON workflow_runs (created_at)",
            """
            CREATE TABLE IF NOT EXISTS workflow_steps (
                trace_id       UUID PRIMARY KEY,  -- the call's agent row in tool_traces
                run_id         UUID NOT NULL,
                agent_id       VARCHAR NOT NULL,
                label          VARCHAR NOT NULL,  -- unique within the run, e.g. 'analyst #2'
                call_index     INTEGER NOT NULL,
                phase          VARCHAR,
                state          VARCHAR NOT NULL,  -- started|completed|failed|cached|cancelled
                chat_id        UUID,
                input_preview  VARCHAR,
                tokens_used    INTEGER NOT NULL DEFAULT 0,
                error          VARCHAR,
                started_at     TIMESTAMPTZ,
                finished_at    TIMESTAMPTZ,
                duration_ms    DOUBLE,
                last_log       VARCHAR,
                step_index     INTEGER NOT NULL DEFAULT 0  -- its place in the run, from 1
            )
            """,
            "CREATE INDEX IF NOT EXISTS workflow_steps_run ON workflow_steps (run_id)",
            """
            CREATE TABLE IF NOT EXISTS workflow_logs (
                run_id    UUID NOT NULL,
                seq       INTEGER NOT NULL,  -- the line's number in its run, from 1
                logged_at TIMESTAMPTZ NOT NULL,
                phase     VARCHAR,
                agent_id  VARCHAR,
                label     VARCHAR,
                trace_id  UUID,
                level     VARCHAR NOT NULL,  -- info | error
                message   VARCHAR NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS workflow_logs_run ON workflow_logs (run_id, seq)",
        ),
    ),
    Migration(
        5,
        "side panels: a run's cancel asked by another process (the server)",
        (
            # As for tasks: the owning kernel polls it and never writes it; its upserts of
            # the run's row leave it alone.
            "ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS cancel_requested BOOLEAN "
            "DEFAULT false",
        ),
    ),
    Migration(
        6,
        "side panels: a change number on every write of a task row",
        (
            "CREATE SEQUENCE IF NOT EXISTS task_changes",
            # The default numbers the existing rows, and every row inserted from now on.
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS change_no BIGINT "
            "DEFAULT nextval('task_changes')",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 1
"""The version this code writes: version 1 (``schema.sql``) plus every migration."""


def stored_version(con: Any) -> int | None:
    """The database's schema version, or None for a database boonb never set up."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND table_name = 'schema_version'"
    ).fetchone()
    if not found or not found[0]:
        return None
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def refuse_newer(version: int | None, path: object) -> None:
    """Refuse a database a newer boonb wrote: this code cannot know what its rows mean."""
    if version is not None and version > SCHEMA_VERSION:
        raise DatabaseTooNew(
            f"{path} was written by a newer boonb (schema version {version}; this boonb "
            f"knows up to {SCHEMA_VERSION}). It was left untouched: upgrade boonb "
            "(pip install -U boonb) in this environment, or set BOONB_DB_PATH to another file."
        )


def migrate(con: Any, baseline_sql: str) -> list[int]:
    """Bring the database to :data:`SCHEMA_VERSION` in one transaction; the versions applied.

    ``baseline_sql`` is version 1 (``schema.sql``), idempotent, so it creates what a new
    database lacks and leaves an existing one alone. A database already current is not
    written to at all.
    """
    version = stored_version(con)
    refuse_newer(version, _path(con))
    if version == SCHEMA_VERSION:
        return []
    applied: list[int] = []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(baseline_sql)
        current = stored_version(con) or 1
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [migration.version])
            applied.append(migration.version)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return applied


def _path(con: Any) -> str:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return str(row[0]) if row and row[0] else "the database"
