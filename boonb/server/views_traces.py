"""The trace viewer in a side panel: its requests answered, its live frames built from rows.

Answers are the cell widget's own (:func:`boonb.widgets.trace_answers.answer_trace_request`),
read from the project database. Frames are the ``tool_trace:complete`` and
``model_call:complete`` frames of the calls stored since the cursor, each with its turn's
figures; a call's start is not stored until it ends, so no ``tool_trace:start`` comes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, JsonValue

from boonb.frames import ModelCallComplete, ToolTraceComplete
from boonb.server.traces import ChatNotFound
from boonb.store import Database, DatabaseLocked, DatabaseUnusable, TraceStore
from boonb.store.project_lists import (
    interrupt_dead_chats,
    interrupt_dead_runs,
    interrupt_dead_tasks,
)
from boonb.store.view_changes import (
    MAX_CHANGES,
    chat_has_active_owner,
    chat_state,
    traces_after,
)
from boonb.widgets.protocol import FrameMessage, TurnFigures
from boonb.widgets.trace_answers import TurnCalls, answer_trace_request, turn_figures

RUNNING = "in_progress"
SERVER_ERRORS = (DatabaseLocked, DatabaseUnusable)
"""Store errors the handler answers with a status (503, 500), not as the view's error."""


def answer(db: Database | None, path: Path, chat: uuid.UUID, request: JsonValue) -> list[BaseModel]:
    """The cell widget's reply to ``request`` about ``chat``; :class:`ChatNotFound` if unknown."""
    store = _known(db, path, chat)
    # A fresh TurnCalls: the server holds nothing between requests, so every turn a reply
    # needs figures of is read whole (a turn is a handful of rows).
    reply = answer_trace_request(
        request, chat=chat, calls=TurnCalls(), traces=lambda: store, reraise=SERVER_ERRORS
    )
    return [reply]


def frames(
    db: Database | None, path: Path, chat: uuid.UUID, state: dict[str, Any] | None
) -> tuple[list[BaseModel], dict[str, Any], bool]:
    """Frames of the calls stored after the cursor's row, the new state, and whether it runs."""
    store = _known(db, path, chat)
    after = None if state is None else _row(state)
    assert db is not None  # _known refused a missing database
    traces, last = traces_after(db, chat, after)
    calls = TurnCalls()
    figures: dict[int, TurnFigures | None] = {}
    for number in sorted({trace.turn_number for trace in traces}):
        found = turn_figures(store, chat, calls, [number])
        figures[number] = found[0] if found else None
    messages: list[BaseModel] = []
    for trace in traces:
        frame = (
            ModelCallComplete(trace=trace)
            if trace.kind == "model"
            else ToolTraceComplete(trace=trace)
        )
        messages.append(FrameMessage(frame=frame, turn=figures.get(trace.turn_number)))
    # A full read left rows unread: poll on for them, even if the chat has ended.
    return messages, {"r": last}, len(traces) >= MAX_CHANGES or _live(db, chat)


def _live(db: Database, chat: uuid.UUID) -> bool:
    """Whether the chat still runs: saved as in progress by a live kernel, or about to be."""
    interrupt_dead_chats(db)
    state = chat_state(db, chat)
    if state is None:
        # A task or run whose kernel died will never save the chat: it reads interrupted.
        interrupt_dead_tasks(db)
        interrupt_dead_runs(db)
        return chat_has_active_owner(db, chat)
    return state == RUNNING


def _known(db: Database | None, path: Path, chat: uuid.UUID) -> TraceStore:
    if db is None:
        raise ChatNotFound(f"no chat {chat}: {path} does not exist yet (no kernel wrote it)")
    store = TraceStore(db)
    if not store.chat_exists(chat):
        raise ChatNotFound(
            f"no chat {chat} is stored in {path}; take chat ids from GET /boonb/api/chats"
        )
    return store


def _row(state: dict[str, Any]) -> int:
    row = state.get("r", -1)
    return row if isinstance(row, int) else -1
