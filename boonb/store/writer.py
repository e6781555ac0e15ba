"""The one batching writer: callers enqueue, a background thread writes.

The caller's cost is a ``deque.append``. The writer thread wakes on a short timer
(or early when the queue grows), groups what it drained by table, and writes it all
inside one transaction, so a batch lands whole or not at all. Traces, the bulk of
what is written, go in as one Arrow table (see :mod:`boonb.store.trace_table`); other
rows go through DuckDB's appender. A batch that meets another process's lock stays
queued and is retried; a committed batch is never written again, so no row is lost or
duplicated. A batch that fails for what is in it is written in parts, so only the bad
rows are left out, each named in the log.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from itertools import groupby
from typing import Any

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.store.database import Database
from boonb.store.errors import DatabaseLocked
from boonb.store.rows import TRACE_COLUMNS, Action, Row, cache_row
from boonb.store.trace_table import trace_table

log = logging.getLogger("boonb.store")

ROW_GROUP = 122_880
"""DuckDB's row group size. A queue this long wakes the writer early. Bursts then land in
transactions of a row group or more, which DuckDB writes faster per row than smaller ones
(it can write whole row groups into the file instead of through its write-ahead log):
100-118k rows/s against 75-112k when the writer woke at 20,000."""


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
        wake_at: int = ROW_GROUP,
    ) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.wake_at = wake_at
        self.rows_written = 0
        self._queue: deque[Frame | TraceRecord | Row | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="boonb-store-writer", daemon=True)
        self._thread.start()

    def enqueue(self, item: Frame | TraceRecord | Row) -> None:
        """Queue a frame, trace or row for writing. Never touches the disk."""
        self._queue.append(item)
        if len(self._queue) >= self.wake_at:
            self._wake.set()

    def enqueue_frame(self, frame: Frame) -> None:
        """The bus subscriber for stored frames.

        A tool call's trace is queued without its frame: one object fewer kept alive,
        and for the garbage collector to visit.
        """
        self.enqueue(frame.trace if type(frame) is ToolTraceComplete else frame)

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
            if isinstance(item, TraceRecord):
                traces.append(item)
            elif isinstance(item, _FlushMarker):
                markers.append(item)
            elif isinstance(item, ToolTraceComplete):
                traces.append(item.trace)
            elif isinstance(item, ModelCallComplete):
                traces.append(item.trace)
                rows.extend(cache_row(item.trace, segment) for segment in item.cache)
            elif isinstance(item, Row):
                rows.append(item)
        try:
            self._write(rows, traces)
        except DatabaseLocked as exc:
            # Keep the batch (in order, ahead of newer items) and try again later.
            kept_rows = len(rows) + len(traces)
            log.warning("store: %s; %d rows kept for the next attempt", exc, kept_rows)
            kept: list[Any] = [*rows, *traces, *markers]
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
                for key, group in groups:
                    _append(con, key, group)
                con.commit()
            except Exception:
                con.rollback()
                # One bad row must not hold back the rest: write the traces and then each
                # group of rows in a transaction of its own, and report what fails.
                self._write_apart(con, traces, groups)
                return
        self.rows_written += len(rows) + len(traces)

    def _write_apart(self, con: Any, traces: list[TraceRecord], groups: list[Any]) -> None:
        self._write_traces_apart(con, traces)
        for key, group in groups:
            failure = self._write_part(con, len(group), partial(_append, con, key, group))
            if failure is not None:
                table, count = key[0], len(group)
                log.error("store: could not write %d rows to %s", count, table, exc_info=failure)

    def _write_traces_apart(self, con: Any, traces: list[TraceRecord]) -> None:
        """Write traces in halves, and halves of those, so only the bad ones are left out."""
        if not traces:
            return
        failure = self._write_part(con, len(traces), partial(_insert_traces, con, traces))
        if failure is None:
            return
        if len(traces) == 1:
            log.error("store: could not write trace %s", traces[0].id, exc_info=failure)
            return
        half = len(traces) // 2
        self._write_traces_apart(con, traces[:half])
        self._write_traces_apart(con, traces[half:])

    def _write_part(self, con: Any, count: int, write: Callable[[], None]) -> Exception | None:
        """One part in a transaction of its own; returns what made it fail, if it did."""
        try:
            con.begin()
            write()
            con.commit()
        except Exception as exc:
            con.rollback()
            return exc
        self.rows_written += count
        return None


def _group_key(row: Row) -> tuple[str, tuple[str, ...], Action]:
    return (row.table, row.columns, row.action)


_INSERT_TRACES = (
    f"INSERT INTO tool_traces ({', '.join(TRACE_COLUMNS)}) "
    f"SELECT {', '.join(TRACE_COLUMNS)} FROM boonb_trace_batch"
)


def _insert_traces(con: Any, traces: list[TraceRecord]) -> None:
    con.register("boonb_trace_batch", trace_table(traces))
    try:
        con.execute(_INSERT_TRACES)
    finally:
        con.unregister("boonb_trace_batch")


def _append(con: Any, key: tuple[str, tuple[str, ...], Action], rows: list[Row]) -> None:
    table, columns, action = key
    appender = con.appender(table, columns=list(columns), action=action)
    appender.append_rows([row.values for row in rows])
    appender.flush()


def _last_per_key(rows: list[Row]) -> list[Row]:
    """Only the newest of several upserts of one key (the first column) in a batch."""
    return list({row.values[0]: row for row in rows}.values())
