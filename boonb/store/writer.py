"""The one batching writer: callers enqueue, a background thread writes.

The caller's cost is a ``deque.append``. The writer thread wakes on a short timer
(or early when the queue grows), groups what it drained by table, and writes it all
inside one transaction, so a batch lands whole or not at all. Traces, the bulk of
what is written, go in as one Arrow table (see :mod:`boonb.store.trace_table`); other
rows go through DuckDB's appender. A batch that meets another process's lock stays
queued and is retried; a committed batch is never written again, so no row is lost or
duplicated. A batch that fails for what is in it is written in parts, so only the bad
rows are left out, each named in the log.

A batch the disk refuses (full, gone read-only) also stays queued. The writer then
backs off, tells the user once (and again when it recovers), and keeps at most
``max_pending`` rows in memory, saying how many it had to drop. Nobody waits on such a
disk: :meth:`Writer.flush` answers False at once while it is stalled.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import duckdb

from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.store import tasks as task_rows
from boonb.store.database import Database
from boonb.store.errors import DatabaseLocked, StoreError
from boonb.store.rows import TRACE_COLUMNS, Action, Row, cache_row, frame_rows
from boonb.store.trace_table import trace_table

log = logging.getLogger("boonb.store")

ROW_GROUP = 122_880
"""DuckDB's row group size. A queue this long wakes the writer early. Bursts then land in
transactions of a row group or more, which DuckDB writes faster per row than smaller ones
(it can write whole row groups into the file instead of through its write-ahead log):
100-118k rows/s against 75-112k when the writer woke at 20,000."""


class _FlushMarker:
    """Placed in the queue by :meth:`Writer.flush` or :meth:`Writer.when_written`.

    Its callback runs with True once everything before it is committed. A marker that
    does not ``outlive_stall`` is answered False as soon as the disk refuses a batch,
    so nobody waits on a disk that cannot take the rows.
    """

    __slots__ = ("callback", "outlive_stall")

    def __init__(self, callback: Callable[[bool], None], *, outlive_stall: bool) -> None:
        self.callback = callback
        self.outlive_stall = outlive_stall

    def answer(self, committed: bool) -> None:
        try:
            self.callback(committed)
        except Exception:  # a listener's bug must not stop the writer
            log.exception("store: a flush callback failed")


class Writer:
    """The project's one batching writer: ``enqueue`` rows and frames, a thread writes them.

    ``flush`` waits until what was enqueued is committed (False when the disk refuses);
    ``close`` flushes and stops the thread. See the module docstring for batching,
    retries and a full disk.
    """

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 0.2,
        wake_at: int = ROW_GROUP,
        max_pending: int = 100_000,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.wake_at = wake_at
        self.max_pending = max_pending
        """Most rows kept in memory while the disk refuses them; past it the oldest go."""
        self.notify = notify or log.warning
        """Told, in plain words, when writing stalls and when it recovers."""
        self.rows_written = 0
        self.rows_dropped = 0
        self._queue: deque[Frame | TraceRecord | Row | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._stall: _Stall | None = None
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

    def wake(self) -> None:
        """Write what is queued now rather than at the next tick (a turn just ended)."""
        self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything enqueued so far; True once it is committed.

        Returns False at once while the disk refuses writes (see :attr:`stalled`): the
        rows stay queued and are written when it recovers, but nobody waits for that.
        """
        if self._closed and not self._thread.is_alive():
            return not self._queue
        if self._stall is not None:
            return False
        done = threading.Event()
        answer: list[bool] = []

        def answered(committed: bool) -> None:
            answer.append(committed)
            done.set()

        self.when_written(answered, outlive_stall=False)
        done.wait(timeout)
        return bool(answer) and answer[0]

    def when_written(self, callback: Callable[[bool], None], *, outlive_stall: bool) -> None:
        """Call ``callback(True)`` once everything queued so far is committed.

        The callback runs on the writer's thread, so waiting holds no thread. With
        ``outlive_stall`` it waits through a stall for the commit; without, a stall
        answers it ``callback(False)`` at once.
        """
        if self._stall is not None and not outlive_stall:
            callback(False)
            return
        self._queue.append(_FlushMarker(callback, outlive_stall=outlive_stall))
        self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the thread and let go of the database file."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self._queue and self._stall is not None:
            self.notify(
                f"boonb: {len(self._queue):,} rows could not be written to {self.db.path} "
                f"({self._stall.reason}) and are lost as this process ends"
            )
        self.db.close()

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def stalled(self) -> str | None:
        """Why writing is failing right now (e.g. "disk full"), or None when it works."""
        stall = self._stall
        return stall.reason if stall is not None else None

    def _run(self) -> None:
        while not self._closed:
            stall = self._stall
            if stall is None:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            else:
                # Back off; a wake meanwhile only keeps the backlog within its bound.
                while not self._closed and (wait := stall.retry_at - time.monotonic()) > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
                    self._bound_backlog()
            try:
                self._drain()
            except Exception:  # never let the thread die: keep retrying, loudly
                log.exception("store: the writer failed unexpectedly; it will try again")
                self._stalled("unexpected error")

    def _take_all(self) -> list[Any]:
        """Everything queued, oldest first; callers enqueue meanwhile without a lock."""
        items: list[Any] = []
        while True:
            try:
                items.append(self._queue.popleft())
            except IndexError:
                return items

    def _drain(self) -> None:
        items = self._take_all()
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
            else:  # a workflow run's steps and log lines (see STORED_FRAME_TYPES)
                rows.extend(frame_rows(item))
        try:
            self._write(rows, traces)
        except DatabaseLocked as exc:
            # Keep the batch (in order, ahead of newer items) and try again later.
            kept = len(rows) + len(traces)
            log.warning("store: %s; %d rows kept for the next attempt", exc, kept)
            self._requeue([*rows, *traces, *markers])
            return
        except _Unwritable as unwritable:
            waiting = [m for m in markers if m.outlive_stall]
            self._requeue([*unwritable.left, *waiting])
            self._stalled(self._describe(unwritable.cause))
            for marker in markers:
                if not marker.outlive_stall:
                    marker.answer(False)
            self._bound_backlog()
            return
        if self._stall is not None:
            self.notify(
                f"boonb: writing to {self.db.path} works again; the "
                f"{len(rows) + len(traces):,} rows kept in memory are stored"
            )
            self._stall = None
        for marker in markers:
            marker.answer(True)

    def _requeue(self, items: list[Any]) -> None:
        self._queue.extendleft(reversed(items))

    def _stalled(self, reason: str) -> None:
        """Enter (or stay in) the stalled state: back off before the next attempt."""
        stall = self._stall
        if stall is None:
            self._stall = _Stall(reason, time.monotonic() + _FIRST_RETRY_S, _FIRST_RETRY_S)
            kept = sum(not isinstance(item, _FlushMarker) for item in self._queue)
            self.notify(
                f"boonb: cannot write traces to {self.db.path}: {reason}; "
                f"{kept:,} rows kept in memory, retrying"
            )
            return
        stall.reason = reason
        stall.backoff = min(stall.backoff * 2, _MAX_RETRY_S)
        stall.retry_at = time.monotonic() + stall.backoff

    def _bound_backlog(self) -> None:
        """While stalled, keep at most ``max_pending`` rows.

        The oldest traces and messages go first; session state (upserts) and flush
        markers are always kept.
        """
        excess = len(self._queue) - self.max_pending
        if excess <= 0:
            return
        items = self._take_all()
        kept: list[Any] = []
        dropped = 0
        for item in items:
            if dropped < excess and not _precious(item):
                dropped += 1
            else:
                kept.append(item)
        self._requeue(kept)
        if dropped:
            self.rows_dropped += dropped
            self.notify(
                f"boonb: dropped the {dropped:,} oldest unwritten rows ({self.rows_dropped:,} "
                f"so far) to keep memory bounded at {self.max_pending:,} "
                "(BOONB_MAX_PENDING_ROWS); free space so the rest can be written"
            )

    def _describe(self, exc: BaseException) -> str:
        directory = self.db.path.parent
        try:
            free = shutil.disk_usage(directory).free
        except OSError:
            free = None
        if free is not None and free < _FULL_BELOW_BYTES:
            return "disk full"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first_line

    def _write(self, rows: list[Row], traces: list[TraceRecord]) -> None:
        """Commit a batch in one transaction; raises :class:`_Unwritable` with what is left."""
        if not rows and not traces:
            return
        groups = [
            (key, _last_per_key(list(group)) if key[2] == "upsert" else list(group))
            for key, group in groupby(sorted(rows, key=_group_key), key=_group_key)
        ]
        try:
            with self.db.connection() as con:
                try:
                    con.begin()
                    if traces:
                        _insert_traces(con, traces)
                    for key, group in groups:
                        _append(con, key, group)
                    con.commit()
                except STORAGE_ERRORS:
                    _rollback(con)
                    raise
                except Exception:
                    _rollback(con)
                    # One bad row must not hold back the rest: write the traces and then
                    # each group of rows in a transaction of its own, and report what fails.
                    self._write_apart(con, [(None, traces), *groups])
                    return
        except STORAGE_ERRORS as exc:
            # DuckDB may have invalidated its instance; the next attempt opens afresh.
            self.db.close()
            raise _Unwritable(exc, [*traces, *rows]) from exc
        self.rows_written += len(rows) + len(traces)

    def _write_apart(self, con: Any, parts: list[tuple[Any, list[Any]]]) -> None:
        """Each part in a transaction of its own.

        Traces that fail are split in halves, and halves of those, so only the bad ones
        are left out, each named in the log.
        """
        todo = deque(part for part in parts if part[1])
        while todo:
            key, items = todo.popleft()
            try:
                con.begin()
                if key is None:
                    _insert_traces(con, items)
                else:
                    _append(con, key, items)
                con.commit()
            except STORAGE_ERRORS as exc:
                _rollback(con)
                self.db.close()
                left = [item for _, part in [(key, items), *todo] for item in part]
                raise _Unwritable(exc, left) from exc
            except Exception as exc:
                _rollback(con)
                if key is None and len(items) > 1:
                    half = len(items) // 2
                    todo.extendleft([(None, items[half:]), (None, items[:half])])
                elif key is None:
                    log.error("store: could not write trace %s", items[0].id, exc_info=exc)
                else:
                    log.error(
                        "store: could not write %d rows to %s", len(items), key[0], exc_info=exc
                    )
                continue
            self.rows_written += len(items)


class _Unwritable(Exception):
    """The disk (not the rows) refused a batch; ``left`` is what was not committed."""

    def __init__(self, cause: BaseException, left: list[Any]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.left = left


@dataclass
class _Stall:
    reason: str
    retry_at: float
    backoff: float


_FIRST_RETRY_S = 0.5
_MAX_RETRY_S = 10.0
_FULL_BELOW_BYTES = 4 << 20
"""Less free space than this where the database lives reads as "disk full"."""

STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    StoreError,
    duckdb.IOException,
    duckdb.TransactionException,  # a commit that could not write its log
    duckdb.FatalException,  # the instance was invalidated by an earlier write failure
)
"""Failures of the disk or the file, not of the rows: the batch is kept and retried."""


def _precious(item: Any) -> bool:
    """Kept when the backlog is trimmed: the latest state of a session or chat, and markers."""
    return isinstance(item, _FlushMarker) or (isinstance(item, Row) and item.action == "upsert")


def _rollback(con: Any) -> None:
    # A failed commit has already ended the transaction, and rolling back again raises;
    # on a connection the disk broke, a rollback that fails leaves nothing more to undo.
    with contextlib.suppress(duckdb.Error):
        con.rollback()


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
    if table == "tasks":  # an upsert cannot take a new change number itself (schema v6)
        task_rows.number_changes(con, [row.values[0] for row in rows])


def _last_per_key(rows: list[Row]) -> list[Row]:
    """Only the newest of several upserts of one key (the first column) in a batch."""
    return list({row.values[0]: row for row in rows}.values())
