"""Sessions that survive: an agent's state saved at turn boundaries, and restored later.

The snapshot holds everything a new kernel needs to carry on — provider settings
(never a key), the whole history, the tool calls still pending, the phase, the
budget left — as JSON in ``agent_sessions``. Saves are debounced: a burst of
boundaries coalesces into one write, and the final state of a run is always written.
A ``session_saved`` frame goes out once a save is on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boonb.agent.loop import Agent
from boonb.frames import SessionSaved, SessionState
from boonb.store import Row, Store, make_row

SNAPSHOT_VERSION = 1
RESUMABLE = ("interrupted", "awaiting_input", "in_progress", "failed", "cancelled")

RESTART_NOTE = (
    "Note from boonb: the Jupyter kernel restarted since your last turn and this conversation "
    "was restored. Notebook variables from before the restart may no longer exist; check with "
    "notebook_vars before relying on them."
)


def snapshot(agent: Agent, *, agent_session_id: uuid.UUID) -> dict[str, Any]:
    """Everything resume needs, as JSON. Holds no API key: the new kernel brings its own."""
    return {
        "version": SNAPSHOT_VERSION,
        "agent_session_id": str(agent_session_id),
        "chat_id": str(agent.chat_id),
        "session_id": str(agent.recorder.session_id),
        "agent_id": agent.recorder.agent_id,
        "title": agent.title,
        "state": agent.state,
        "phase": agent.phase,
        "provider": {
            "name": agent.provider_name,
            "base_url": agent.client.profile.base_url,
            "model": agent.model,
        },
        "tools": sorted(agent.tools),
        "max_turns": agent.max_turns,
        "budget": agent.budget,
        "tokens_used": agent.total.usage.tokens_used,
        "turn_number": agent.turn_number,
        "messages": list(agent.messages),
        "pending_tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments}
            for c in agent.pending_tool_calls()
        ],
        "kernel_pid": os.getpid(),
        "hostname": socket.gethostname(),
    }


@dataclass
class _Pending:
    snapshot: dict[str, Any]
    timer: asyncio.TimerHandle | None = None


class SessionSaver:
    """Debounced saves of one agent's session; attach with ``agent.on_boundary = saver``."""

    def __init__(
        self,
        store: Store,
        publish: Callable[[SessionSaved], None],
        *,
        agent_session_id: uuid.UUID | None = None,
        debounce: float = 0.2,
    ) -> None:
        self.store = store
        self.publish = publish
        self.agent_session_id = agent_session_id or uuid.uuid4()
        self.debounce = debounce
        self.writes = 0
        self._pending: _Pending | None = None

    def __call__(self, agent: Agent, final: bool) -> None:
        """A turn boundary: save now if ``final``, else within ``debounce`` seconds.

        The state is captured now, at the boundary, and the newest capture is written.
        """
        loop = asyncio.get_running_loop()
        captured = snapshot(agent, agent_session_id=self.agent_session_id)
        if self._pending is None:
            self._pending = _Pending(captured)
        else:
            self._pending.snapshot = captured
        if final:
            if self._pending.timer is not None:
                self._pending.timer.cancel()
            self._write()
        elif self._pending.timer is None:
            self._pending.timer = loop.call_later(self.debounce, self._write)

    def _write(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        snap = pending.snapshot
        now = datetime.now(UTC)
        self.store.writer.enqueue(self.row(snap, now))
        self.writes += 1
        frame = SessionSaved(
            agent_session_id=self.agent_session_id,
            chat_id=uuid.UUID(snap["chat_id"]),
            state=snap["state"],
            turn_number=snap["turn_number"],
            last_update=now,
        )
        # Announce the save once the writer has put it on disk, off the event loop.
        task = asyncio.get_running_loop().run_in_executor(None, self.store.writer.flush)
        task.add_done_callback(lambda _: self.publish(frame))

    def row(self, snap: dict[str, Any], now: datetime) -> Row:
        return make_row(
            "agent_sessions",
            {
                "id": self.agent_session_id,
                "chat_id": uuid.UUID(snap["chat_id"]),
                "session_id": uuid.UUID(snap["session_id"]),
                "state": snap["state"],
                "snapshot": snap,
                "kernel_pid": snap["kernel_pid"],
                "last_update": now,
            },
            json_columns=frozenset({"snapshot"}),
            action="upsert",
        )


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``%agent sessions``."""

    id: uuid.UUID
    chat_id: uuid.UUID
    state: SessionState
    title: str
    turn_number: int
    pending_tool_calls: int
    last_update: datetime


def mark_interrupted(store: Store) -> int:
    """Mark ``interrupted`` the sessions left ``in_progress`` by a dead kernel of this host.

    Returns how many.
    """
    with store.db.connection() as con:
        rows = con.execute(
            "SELECT id, kernel_pid, snapshot->>'$.hostname' FROM agent_sessions "
            "WHERE state = 'in_progress'"
        ).fetchall()
        dead = [
            session_id
            for session_id, pid, host in rows
            if host == socket.gethostname() and pid != os.getpid() and not process_alive(pid)
        ]
        for session_id in dead:
            con.execute(
                "UPDATE agent_sessions SET state = 'interrupted', "
                'snapshot = json_merge_patch(snapshot, \'{"state": "interrupted"}\') '
                "WHERE id = ?",
                [session_id],
            )
    return len(dead)


def list_sessions(store: Store) -> list[SessionInfo]:
    """Sessions that can be resumed, newest first."""
    store.writer.flush()
    with store.db.connection() as con:
        rows = con.execute(
            "SELECT id, chat_id, state, coalesce(snapshot->>'$.title', ''), "
            "CAST(snapshot->>'$.turn_number' AS INTEGER), "
            "json_array_length(snapshot->'$.pending_tool_calls'), last_update "
            "FROM agent_sessions WHERE state IN ? ORDER BY last_update DESC",
            [list(RESUMABLE)],
        ).fetchall()
    return [SessionInfo(*row) for row in rows]


def load_snapshot(store: Store, agent_session_id: uuid.UUID) -> dict[str, Any] | None:
    store.writer.flush()
    with store.db.connection() as con:
        row = con.execute(
            "SELECT snapshot FROM agent_sessions WHERE id = ?", [agent_session_id]
        ).fetchone()
    if row is None:
        return None
    value: dict[str, Any] = json.loads(row[0])
    return value


def process_alive(pid: int | None) -> bool:
    """Whether a process of this host with that id still runs."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
