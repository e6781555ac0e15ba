"""The side panels' one cheap poll: what runs in the project now, and whether anything changed.

One read of the file: the rows that may be running (chats, tasks, runs; a handful), and a
fingerprint of every chat, session, task and run row. Rows whose kernel (on this host)
died count as interrupted, not running; they are not marked here (a list read marks them,
and that row change changes the version).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from pydantic import BaseModel

from boonb.store.database import Database
from boonb.store.liveness import owner_gone


class Activity(BaseModel):
    """What the sidebar's badge and lists need to know to refresh."""

    chats_running: int
    """Chats whose latest saved state is ``in_progress`` (their kernel alive)."""
    tasks_running: int
    tasks_pending: int
    """Pending tasks: claimed by a live kernel, or waiting for one to claim them (a retry)."""
    runs_running: int
    """Workflow runs pending or running (their kernel alive)."""
    version: str
    """Opaque; changes whenever a chat, a saved session, a task, a run or a trace row does."""


@dataclass(frozen=True)
class Timed:
    """An answer and how long the database file was held for it, part by part (seconds)."""

    activity: Activity
    open_s: float
    """Opening the file (0 when a lingering handle was reused)."""
    query_s: float
    """The two reads."""
    linger_s: float
    """How long the handle stays open after its last use, for a burst of reads to reuse
    it (``Database.linger``): others wait for the file that long too."""

    @property
    def held_s(self) -> float:
        """The whole hold: open, reads and linger."""
        return self.open_s + self.query_s + self.linger_s


# The rows that may be running, with the pid and host of the kernel that owns them. A
# chat's state is its latest saved session's; only chats with a session saved running are
# grouped (a handful, not every chat of the project).
_ACTIVE = """
SELECT 'chat', arg_max(kernel_pid, last_update), arg_max(snapshot->>'$.hostname', last_update)
FROM agent_sessions
WHERE chat_id IN (SELECT chat_id FROM agent_sessions WHERE state = 'in_progress')
GROUP BY chat_id HAVING arg_max(state, last_update) = 'in_progress'
UNION ALL
SELECT state, owner_pid, owner_host FROM tasks WHERE state IN ('pending', 'running')
UNION ALL
SELECT 'run', r.kernel_pid, s.hostname
FROM workflow_runs r LEFT JOIN sessions s ON s.id = r.session_id
WHERE r.state IN ('pending', 'running')
"""

# Per table: how many rows, and the XOR of their hashes (changes when any row does). A
# UNION of plain aggregates: as scalar subqueries DuckDB took twenty times as long.
_VERSION = """
SELECT 'chats', count(*), bit_xor(hash(id, title)) FROM chats
UNION ALL
SELECT 'sessions', count(*), bit_xor(hash(id, state, last_update)) FROM agent_sessions
UNION ALL
SELECT 'tasks', count(*), bit_xor(hash(id, state, updated_at, cancel_requested)) FROM tasks
UNION ALL
SELECT 'runs', count(*), bit_xor(hash(id, state, tokens_used, agents_done, agents_failed,
    cancel_requested, started_at, finished_at)) FROM workflow_runs
UNION ALL
SELECT 'traces', count(*), NULL FROM tool_traces
"""


def activity(db: Database) -> Timed:
    """What runs now, and the version of every chat, task and run row (one hold of the file)."""
    entered = time.perf_counter()
    with db.connection() as con:
        start = time.perf_counter()
        active = con.execute(_ACTIVE).fetchall()
        fingerprint = sorted(con.execute(_VERSION).fetchall())
        done = time.perf_counter()
    counts = {"chat": 0, "running": 0, "pending": 0, "run": 0}
    for kind, pid, host in active:
        if not owner_gone(pid, host):
            counts[kind] += 1
    version = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:20]
    answer = Activity(
        chats_running=counts["chat"],
        tasks_running=counts["running"],
        tasks_pending=counts["pending"],
        runs_running=counts["run"],
        version=version,
    )
    return Timed(answer, open_s=start - entered, query_s=done - start, linger_s=db.linger)


NO_ACTIVITY = Activity(
    chats_running=0, tasks_running=0, tasks_pending=0, runs_running=0, version="none"
)
"""Before any kernel wrote the project's database."""

__all__ = ["NO_ACTIVITY", "Activity", "Timed", "activity"]
