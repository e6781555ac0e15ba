"""The one batching writer: callers enqueue, a background thread writes.

The caller's cost is a ``deque.append``. The writer thread wakes on a short timer
(or early when the queue grows), groups what it drained by table, and writes it all
inside one transaction, so a batch lands whole or not at all. Traces, the bulk of
what is written, go as one JSON document serialised by pydantic (in Rust) and parsed
by DuckDB's ``read_json`` (in C++); other rows go through DuckDB's appender. A batch
that meets another process's lock stays queued and is retried; a committed batch is
never written again, so no row is lost or duplicated.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import deque
from itertools import groupby
from typing import Any

from pydantic import TypeAdapter

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.store.database import Database
from boonb.store.errors import DatabaseLocked
from boonb.store.rows import TRACE_COLUMNS, Action, Row, cache_row, rows_for, trace_row

log = logging.getLogger("boonb.store")


class _FlushMarker:
    """Placed in the queue by :meth:`Writer.flush`; set once everything before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Writer:
    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 0.2,
        wake_at: int = 20_000,
    ) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.wake_at = wake_at
        self.rows_written = 0
        self._queue: deque[Frame | Row | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="boonb-store-writer", daemon=True)
        self._thread.start()

    def enqueue(self, item: Frame | Row) -> None:
        """Queue a frame or row for writing. Never touches the disk."""
        self._queue.append(item)
        if len(self._queue) >= self.wake_at:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything enqueued so far; True once it is on disk."""
        if self._closed and not self._thread.is_alive():
            return not self._queue
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the thread and let go of the database file."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.db.close()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        items: list[Any] = []
        while True:
            try:
                items.append(self._queue.popleft())
            except IndexError:
                break
        if not items:
            return
        rows: list[Row] = []
        traces: list[TraceRecord] = []
        markers: list[_FlushMarker] = []
        for item in items:
            if isinstance(item, _FlushMarker):
                markers.append(item)
            elif isinstance(item, ToolTraceComplete):
                traces.append(item.trace)
            elif isinstance(item, ModelCallComplete):
                traces.append(item.trace)
                rows.extend(cache_row(item.trace, segment) for segment in item.cache)
            else:
                rows.extend(rows_for(item))
        try:
            self._write(rows, traces)
        except DatabaseLocked as exc:
            # Keep the batch (in order, ahead of newer items) and try again later.
            log.warning("store: %s; %d rows kept for the next attempt", exc, len(rows))
            kept: list[Any] = [*rows, *(ToolTraceComplete(trace=t) for t in traces), *markers]
            self._queue.extendleft(reversed(kept))
            return
        for marker in markers:
            marker.done.set()

    def _write(self, rows: list[Row], traces: list[TraceRecord]) -> None:
        if not rows and not traces:
            return
        groups = [
            (key, _last_per_key(list(group)) if key[2] == "upsert" else list(group))
            for key, group in groupby(sorted(rows, key=_group_key), key=_group_key)
        ]
        with self.db.connection() as con:
            con.begin()
            try:
                if traces:
                    _insert_traces(con, traces)
                for (table, columns, action), group in groups:
                    appender = con.appender(table, columns=list(columns), action=action)
                    appender.append_rows([row.values for row in group])
                    appender.flush()
                con.commit()
            except Exception:
                con.rollback()
                # One bad row must not hold back the rest: write group by group and
                # report the group that fails.
                trace_groups = (
                    [(("tool_traces", TRACE_COLUMNS, "insert"), [trace_row(t) for t in traces])]
                    if traces
                    else []
                )
                self._write_groups_apart(con, trace_groups + groups)
                return
        self.rows_written += len(rows) + len(traces)

    def _write_groups_apart(self, con: Any, groups: list[Any]) -> None:
        for (table, columns, action), group in groups:
            try:
                con.begin()
                appender = con.appender(table, columns=list(columns), action=action)
                appender.append_rows([row.values for row in group])
                appender.flush()
                con.commit()
                self.rows_written += len(group)
            except Exception:
                con.rollback()
                log.exception("store: could not write %d rows to %s", len(group), table)


def _group_key(row: Row) -> tuple[str, tuple[str, ...], Action]:
    return (row.table, row.columns, row.action)


_TRACES: TypeAdapter[list[TraceRecord]] = TypeAdapter(list[TraceRecord])
_TRACE_TYPES = {
    "id": "UUID", "session_id": "UUID", "chat_id": "UUID", "turn_number": "INTEGER",
    "kind": "VARCHAR", "tool_name": "VARCHAR", "call_id": "VARCHAR", "agent_id": "VARCHAR",
    "workflow_run_id": "UUID", "parent_id": "UUID", "input": "JSON", "output": "JSON",
    "started_at": "TIMESTAMPTZ", "finished_at": "TIMESTAMPTZ", "latency_ms": "DOUBLE",
    "input_tokens": "INTEGER", "output_tokens": "INTEGER", "cache_tokens": "INTEGER",
    "cache_miss_tokens": "INTEGER", "reasoning_tokens": "INTEGER", "tokens_used": "INTEGER",
    "cost_usd": "DOUBLE", "error": "VARCHAR", "outcome": "VARCHAR",
}  # fmt: skip
assert tuple(_TRACE_TYPES) == TRACE_COLUMNS
_INSERT_TRACES = (
    f"INSERT INTO tool_traces ({', '.join(TRACE_COLUMNS)}) "
    f"SELECT {', '.join(TRACE_COLUMNS)} FROM read_json(?, format = 'array', columns = "
    "{" + ", ".join(f"'{c}': '{t}'" for c, t in _TRACE_TYPES.items()) + "})"
)


def _insert_traces(con: Any, traces: list[TraceRecord]) -> None:
    """Insert traces as one JSON document: far cheaper per row than converting each value."""
    with tempfile.NamedTemporaryFile(prefix="boonb-traces-", suffix=".json") as batch:
        batch.write(_TRACES.dump_json(traces))
        batch.flush()
        con.execute(_INSERT_TRACES, [batch.name])


def _last_per_key(rows: list[Row]) -> list[Row]:
    """Only the newest of several upserts of one key (the first column) in a batch."""
    return list({row.values[0]: row for row in rows}.values())
