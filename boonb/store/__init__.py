"""The DuckDB store: schema, the batching writer, and trace queries."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

from boonb.store.database import SCHEMA_VERSION, Database, check_path
from boonb.store.errors import (
    DatabaseDamaged,
    DatabaseLocked,
    DatabaseTooNew,
    DatabaseUnusable,
    InvalidChatId,
    InvalidCursor,
    InvalidLimit,
    InvalidQuery,
    InvalidSessionId,
    StoreError,
)
from boonb.store.rows import STORED_FRAME_TYPES, Row, make_row
from boonb.store.traces import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CacheBreak,
    ChatHighlights,
    ChatTotals,
    FailedCall,
    SessionSummary,
    SlowCall,
    TracePage,
    TraceStore,
    TurnCache,
)
from boonb.store.workflow_runs import (
    InvalidRunId,
    InvalidState,
    RunDetail,
    RunPage,
    RunSummary,
    WorkflowRunStore,
)
from boonb.store.writer import Writer

TABLES = (
    "sessions", "chats", "messages", "message_parts", "tool_traces", "cache_stats",
    "agent_sessions", "tasks", "workflow_runs", "workflow_cache", "workflow_steps",
    "workflow_logs",
)  # fmt: skip


class Store:
    """A project database with its writer and queries."""

    def __init__(
        self,
        path: Path | str,
        *,
        flush_interval: float = 0.2,
        lock_timeout: float = 30.0,
        max_pending: int = 100_000,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.db = Database(path, lock_timeout=lock_timeout)
        self.writer = Writer(
            self.db, flush_interval=flush_interval, max_pending=max_pending, notify=notify
        )
        self.traces = TraceStore(self.db)
        # A store nobody closed still flushes and lets go of the file at interpreter exit.
        self._finalizer = weakref.finalize(self, self.writer.close, 30.0)

    @property
    def path(self) -> Path:
        return self.db.path

    def row_counts(self) -> dict[str, int]:
        with self.db.connection() as con:
            return {
                table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in TABLES
            }

    def close(self, timeout: float | None = 30.0) -> None:
        self._finalizer.detach()
        self.writer.close(timeout)


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SCHEMA_VERSION",
    "STORED_FRAME_TYPES",
    "TABLES",
    "CacheBreak",
    "ChatHighlights",
    "ChatTotals",
    "Database",
    "DatabaseDamaged",
    "DatabaseLocked",
    "DatabaseTooNew",
    "DatabaseUnusable",
    "FailedCall",
    "InvalidChatId",
    "InvalidCursor",
    "InvalidLimit",
    "InvalidQuery",
    "InvalidRunId",
    "InvalidSessionId",
    "InvalidState",
    "Row",
    "RunDetail",
    "RunPage",
    "RunSummary",
    "SessionSummary",
    "SlowCall",
    "Store",
    "StoreError",
    "TracePage",
    "TraceStore",
    "TurnCache",
    "WorkflowRunStore",
    "Writer",
    "check_path",
    "make_row",
]
