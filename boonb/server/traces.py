"""Blocking trace reads for the handlers; call them in a worker thread, not the event loop."""

from __future__ import annotations

import threading
from pathlib import Path

from boonb.store import Database, InvalidChatId, TracePage, TraceStore
from boonb.store.traces import parse_uuid


class ChatNotFound(LookupError):
    """No chat with this id: no row in ``chats`` and no traces (or no database yet)."""


class ProjectTraces:
    """The project's traces, read through a :class:`Database` opened once the file exists.

    The server never creates the database: until a kernel has written one, every
    chat is unknown.
    """

    def __init__(self, path: Path, *, lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._db: Database | None = None
        self._lock = threading.Lock()

    def page(
        self,
        chat_id: str,
        *,
        cursor: str | None,
        limit: int,
        turn_number: int | None,
    ) -> TracePage:
        """A page of a chat's traces; :class:`ChatNotFound` for a chat the project lacks."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        db = self._database()
        if db is None:
            raise ChatNotFound(f"no chat {chat}: {self.path} does not exist yet")
        page = TraceStore(db).page(chat, cursor=cursor, limit=limit, turn_number=turn_number)
        # An empty page is the one case where the chat may not exist; a filter that
        # matches nothing in a known chat is still a 200 with no traces.
        if not page.traces and not TraceStore(db).chat_exists(chat):
            raise ChatNotFound(f"no chat {chat} in {self.path}")
        return page

    def _database(self) -> Database | None:
        with self._lock:
            if self._db is None and self.path.exists():
                self._db = Database(self.path, lock_timeout=self.lock_timeout)
            return self._db
