"""Queries over saved agent sessions: what can be resumed, a snapshot, and finished calls.

A chat has one id everywhere (the chat view, ``%traces``, ``%agent sessions``), so the
sessions are looked up by chat id, or by a unique prefix of it as git does.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boonb.store.database import Database
from boonb.store.errors import InvalidQuery

RESUMABLE = ("interrupted", "awaiting_input", "in_progress", "failed", "cancelled")
MIN_PREFIX = 4

_PREFIX = re.compile(r"[0-9a-f-]+")


class ChatNotFound(InvalidQuery):
    """No saved chat has that id or prefix (or a prefix names several)."""


@dataclass(frozen=True)
class SavedChat:
    """One row of ``%agent sessions``: a chat that can be resumed."""

    chat_id: uuid.UUID
    state: str
    title: str
    turn_number: int
    pending_tool_calls: int
    last_update: datetime
    workflow_run_id: uuid.UUID | None
    """Set for an agent a workflow ran: a child of that run, not a chat of the user's."""
    agent_id: str | None


def resumable_chats(db: Database, *, include_children: bool = False) -> list[SavedChat]:
    """Chats that can be resumed, newest first; workflow agents only when asked."""
    children = "" if include_children else "AND c.workflow_run_id IS NULL"
    with db.connection() as con:
        rows = con.execute(
            "SELECT s.chat_id, s.state, coalesce(s.snapshot->>'$.title', ''), "
            "CAST(s.snapshot->>'$.turn_number' AS INTEGER), "
            "json_array_length(s.snapshot->'$.pending_tool_calls'), s.last_update, "
            "c.workflow_run_id, c.agent_id "
            "FROM agent_sessions s LEFT JOIN chats c ON c.id = s.chat_id "
            f"WHERE s.state IN ? {children} ORDER BY s.last_update DESC",
            [list(RESUMABLE)],
        ).fetchall()
    return [SavedChat(*row) for row in rows]


def resolve_chat(db: Database, chat: uuid.UUID | str) -> uuid.UUID:
    """The saved chat a full id or a unique prefix names; :class:`ChatNotFound` otherwise."""
    text = str(chat).strip().lower()
    if not _PREFIX.fullmatch(text) or len(text.replace("-", "")) < MIN_PREFIX:
        raise ChatNotFound(
            f"{str(chat)!r} is not a chat id; give the id (or its first {MIN_PREFIX}+ "
            "characters) that %agent sessions shows"
        )
    with db.connection() as con:
        found = con.execute(
            "SELECT DISTINCT chat_id FROM agent_sessions "
            "WHERE starts_with(CAST(chat_id AS VARCHAR), ?) LIMIT 3",
            [text],
        ).fetchall()
    if not found:
        raise ChatNotFound(f"no saved chat {text}; see %agent sessions")
    if len(found) > 1:
        shown = ", ".join(str(row[0]) for row in found)
        raise ChatNotFound(f"{text} names several chats ({shown}); give more of the id")
    chat_id: uuid.UUID = found[0][0]
    return chat_id


def load_snapshot(db: Database, chat_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]] | None:
    """The newest saved session of a chat: its id and snapshot."""
    return _newest_snapshot(db, "chat_id", chat_id)


def load_session(db: Database, agent_session_id: uuid.UUID) -> dict[str, Any] | None:
    """The snapshot saved under a session id."""
    found = _newest_snapshot(db, "id", agent_session_id)
    return None if found is None else found[1]


def _newest_snapshot(
    db: Database, column: str, value: uuid.UUID
) -> tuple[uuid.UUID, dict[str, Any]] | None:
    with db.connection() as con:
        row = con.execute(
            f"SELECT id, snapshot FROM agent_sessions WHERE {column} = ? "
            "ORDER BY last_update DESC LIMIT 1",
            [value],
        ).fetchone()
    if row is None:
        return None
    snapshot: dict[str, Any] = json.loads(row[1])
    return row[0], snapshot


def chat_parent(db: Database, chat_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Where a chat hangs in the trace tree (the row above it, and its tree), if anywhere."""
    with db.connection() as con:
        row = con.execute(
            "SELECT parent_id, root_id FROM chats WHERE id = ? AND parent_id IS NOT NULL",
            [chat_id],
        ).fetchone()
    return None if row is None else (row[0], row[1])


def in_progress(db: Database) -> list[tuple[uuid.UUID, int | None, str | None]]:
    """Sessions saved as running: id, kernel pid and host."""
    with db.connection() as con:
        rows = con.execute(
            "SELECT id, kernel_pid, snapshot->>'$.hostname' FROM agent_sessions "
            "WHERE state = 'in_progress'"
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def mark_interrupted(db: Database, session_ids: list[uuid.UUID]) -> None:
    with db.connection() as con:
        for session_id in session_ids:
            con.execute(
                "UPDATE agent_sessions SET state = 'interrupted', "
                'snapshot = json_merge_patch(snapshot, \'{"state": "interrupted"}\') '
                "WHERE id = ?",
                [session_id],
            )


@dataclass(frozen=True)
class FinishedCall:
    """A tool call that finished before the kernel died: what the model would have read."""

    call_id: str
    output: Any
    error: str | None


def finished_tool_calls(
    db: Database, chat_id: uuid.UUID, call_ids: list[str]
) -> dict[str, FinishedCall]:
    """The stored results of those calls of a chat that finished (success or error)."""
    if not call_ids:
        return {}
    with db.connection() as con:
        rows = con.execute(
            "SELECT call_id, output, error FROM tool_traces "
            "WHERE chat_id = ? AND kind = 'tool' AND call_id IN ? "
            "AND outcome IN ('success', 'error') ORDER BY finished_at",
            [chat_id, call_ids],
        ).fetchall()
    return {
        call_id: FinishedCall(call_id, None if output is None else json.loads(output), error)
        for call_id, output, error in rows
    }
