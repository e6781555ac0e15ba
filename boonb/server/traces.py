"""Blocking trace reads for the handlers; call them in a worker thread, not the event loop."""

from __future__ import annotations

from boonb.server.database import ProjectDatabase
from boonb.store import Database, InvalidChatId, StoreError, TracePage, TraceStore
from boonb.store.errors import InvalidTraceId
from boonb.store.traces import TraceDetail, parse_uuid

DEFAULT_TREE_NODES = 2_000
"""Rows a tree answer holds unless asked for fewer or more."""
MAX_TREE_NODES = 20_000

# Why a chat a kernel is running may not be found yet, for the 404's message.
_NOT_STORED_YET = (
    "A running chat is stored by its kernel moments after it starts (its chat row within "
    "the kernel's flush interval, BOONB_FLUSH_INTERVAL_MS, then its traces as each call "
    "ends): if it has just started, ask again; otherwise check the id "
    "(%agent sessions lists the project's chats)."
)


class ChatNotFound(StoreError, LookupError):
    """No chat with this id: no row in ``chats`` and no traces (or no database yet)."""


class TraceNotFound(StoreError, LookupError):
    """No trace with this id in the project (or no database yet)."""


class ProjectTraces:
    """The project's traces, read through a :class:`Database` opened once the file exists.

    The server never creates the database: until a kernel has written one, every
    chat is unknown.
    """

    def __init__(self, database: ProjectDatabase) -> None:
        self.database = database
        self.path = database.path

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
            raise ChatNotFound(f"no chat {chat}: {self.path} does not exist yet. {_NOT_STORED_YET}")
        page = TraceStore(db).page(chat, cursor=cursor, limit=limit, turn_number=turn_number)
        # An empty page is the one case where the chat may not exist; a filter that
        # matches nothing in a known chat, or a chat whose row is stored before any
        # trace, is still a 200 with no traces.
        if not page.traces and not TraceStore(db).chat_exists(chat):
            raise ChatNotFound(f"no chat {chat} is stored in {self.path}. {_NOT_STORED_YET}")
        return page

    def detail(self, trace_id: str) -> TraceDetail:
        """One trace in full; :class:`TraceNotFound` for a trace the project lacks."""
        trace = parse_uuid(trace_id, InvalidTraceId, "trace id")
        db = self._database()
        found = TraceStore(db).detail(trace) if db is not None else None
        if found is None:
            where = self.path if db is not None else f"{self.path} (it does not exist yet)"
            raise TraceNotFound(
                f"no trace {trace} is stored in {where}. A call's trace is stored moments "
                "after the call ends; take trace ids from a page of the chat's traces."
            )
        return found

    def tree_json(
        self,
        root_id: str,
        *,
        max_depth: int | None,
        max_nodes: int,
        subtree: str | None,
    ) -> bytes:
        """A root's tree as JSON, capped; :class:`TraceNotFound` for a tree (or row) it lacks."""
        root = parse_uuid(root_id, InvalidTraceId, "root id")
        branch = None if subtree is None else parse_uuid(subtree, InvalidTraceId, "subtree")
        db = self._database()
        tree = None
        if db is not None:
            tree = TraceStore(db).tree_json(
                root, max_depth=max_depth, max_nodes=max_nodes, subtree=branch
            )
        if tree is None:
            where = self.path if db is not None else f"{self.path} (it does not exist yet)"
            what = f"no trace tree {root}" if branch is None else f"no row {branch} in tree {root}"
            raise TraceNotFound(
                f"{what} is stored in {where}. A tree's root is a chat's id or a workflow "
                "run's id; its rows are stored moments after each call ends. Take row ids "
                "from the tree itself."
            )
        return tree

    def _database(self) -> Database | None:
        return self.database.get()
