"""Sessions that survive: an agent's state saved at turn boundaries, and restored later.

The snapshot holds everything a new kernel needs to carry on — provider settings
(never a key), the whole history, the tool calls still pending, the phase, the
budget left — as JSON in ``agent_sessions``. The end of a turn is written at once;
boundaries within a turn are debounced, and the final state of a run is always written.
A ``session_saved`` frame goes out once a save is on disk.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boonb.agent.loop import Agent
from boonb.frames import SessionSaved
from boonb.store import Row, Store, agent_sessions, make_row
from boonb.store.agent_sessions import SavedChat
from boonb.store.liveness import process_alive

SNAPSHOT_VERSION = 1

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


def adopted(
    snap: dict[str, Any], *, agent_session_id: uuid.UUID, session_id: uuid.UUID
) -> dict[str, Any]:
    """A snapshot taken in another process, as this kernel's own (a copy).

    An agent run on a Dask worker sends its snapshots to the kernel that owns its session:
    the saved row must name this kernel's session and process, so ``mark_interrupted``
    and resume treat it exactly as a local agent's.
    """
    return {
        **snap,
        "agent_session_id": str(agent_session_id),
        "session_id": str(session_id),
        "kernel_pid": os.getpid(),
        "hostname": socket.gethostname(),
    }


@dataclass
class _Pending:
    snapshot: dict[str, Any]
    timer: asyncio.TimerHandle | None = None


class SessionSaver:
    """Saves of one agent's session; attach with ``agent.on_boundary = saver``.

    A boundary between turns (a turn's tools are done, or a run starts or ends) and the
    session's first are written at once and wake the store's writer, so a kernel killed
    after it keeps that turn. The boundary within a turn (the model asked for tools) is
    debounced: a burst coalesces into one write, superseded by the turn's end.
    """

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
        self._saved = False

    def __call__(self, agent: Agent, final: bool) -> None:
        """A boundary: save now between turns, within ``debounce`` inside a turn.

        The state is captured now, at the boundary, and the newest capture is written.
        """
        self.save(snapshot(agent, agent_session_id=self.agent_session_id), final=final)

    def save(self, captured: dict[str, Any], *, final: bool) -> None:
        """Save a snapshot taken at a boundary, as :meth:`__call__` does with its own.

        For an agent that runs elsewhere (a Dask worker) and sends its snapshots here:
        the kernel owns the session, so its rows and ``session_saved`` frames are the
        kernel's, in the same order and with the same debounce as a local agent's.
        """
        loop = asyncio.get_running_loop()
        if self._pending is None:
            self._pending = _Pending(captured)
        else:
            self._pending.snapshot = captured
        if final or not self._saved or captured["phase"] != "tools":
            if self._pending.timer is not None:
                self._pending.timer.cancel()
            self._write()
            # Everything the turn recorded goes to disk now, in one transaction: waking the
            # writer inside the turn as well would put the turn's end behind a second commit.
            self.store.writer.wake()
        elif self._pending.timer is None:
            self._pending.timer = loop.call_later(self.debounce, self._write)

    def _write(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        snap = pending.snapshot
        self._saved = True
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
        # Announce the save once it is on disk. The writer calls back on its own thread,
        # so no thread waits for the disk (which may be full for a while).
        loop = asyncio.get_running_loop()

        def saved(committed: bool) -> None:
            if committed and not loop.is_closed():
                loop.call_soon_threadsafe(self.publish, frame)

        self.store.writer.when_written(saved, outlive_stall=True)

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


def mark_interrupted(store: Store) -> int:
    """Mark ``interrupted`` the sessions left ``in_progress`` by a dead kernel of this host.

    Returns how many.
    """
    here = socket.gethostname()
    dead = [
        session_id
        for session_id, pid, host in agent_sessions.in_progress(store.db)
        if host == here and pid != os.getpid() and not process_alive(pid)
    ]
    agent_sessions.mark_interrupted(store.db, dead)
    return len(dead)


def list_sessions(store: Store, *, include_children: bool = False) -> list[SavedChat]:
    """Chats that can be resumed, newest first (workflow agents only when asked)."""
    store.writer.flush()
    return agent_sessions.resumable_chats(store.db, include_children=include_children)


def load_snapshot(store: Store, agent_session_id: uuid.UUID) -> dict[str, Any] | None:
    store.writer.flush()
    return agent_sessions.load_session(store.db, agent_session_id)
