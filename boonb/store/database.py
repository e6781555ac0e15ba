"""Access to the project's DuckDB file, shared between processes.

DuckDB lets one process hold a database file at a time, and several kernels and the
Jupyter server share one project database. So a :class:`Database` holds the file
only while working: it opens it on demand, keeps it for a short ``linger`` so a burst
of queries pays for one open, and then lets go. An open that meets another
process's lock is retried with exponential backoff until ``lock_timeout``. A busy
process gives the file up at least every ``max_hold`` seconds, so another process
waiting for it is never starved.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from boonb.store.errors import DatabaseDamaged, DatabaseLocked, DatabaseUnusable
from boonb.store.migrations import SCHEMA_VERSION, migrate

# Every DuckDB file carries this magic at byte 8 of its main header; two database
# headers follow (checksum, iteration, meta block, free list, block count, block size, ...),
# then whole blocks. Checked against DuckDB 2.0's files.
_DUCKDB_MAGIC = b"DUCK"
_MAGIC_OFFSET = 8
_DATABASE_HEADER_OFFSETS = (4096, 8192)
_HEADERS_END = 12288
# DuckDB refuses, within one process, a connection to a file another connection holds with
# a different configuration (read-only vs read-write), with no retry. The damage check's
# read-only look and every open take turns under this lock, so two Database objects of one
# file (the server has several) never meet that way.
_CONNECTING = threading.Lock()

__all__ = ["SCHEMA_VERSION", "Database", "check_path", "schema_sql"]


def schema_sql() -> str:
    return resources.files("boonb.store").joinpath("schema.sql").read_text(encoding="utf-8")


def check_path(path: Path) -> None:
    """Refuse, before touching anything, a path boonb must not open or overwrite."""
    if path.exists():
        if path.is_dir():
            raise DatabaseUnusable(f"{path} is a directory, not a DuckDB file; set BOONB_DB_PATH")
        with path.open("rb") as handle:
            header = handle.read(_HEADERS_END)
        if header and header[_MAGIC_OFFSET : _MAGIC_OFFSET + len(_DUCKDB_MAGIC)] != _DUCKDB_MAGIC:
            raise DatabaseUnusable(
                f"{path} is not a DuckDB database; boonb will not overwrite it. "
                "Move it away or point BOONB_DB_PATH at another file."
            )
        if header:
            _check_whole(path, header)
        if _read_only_mount(path):
            raise DatabaseUnusable(
                f"{path} is on a read-only filesystem; boonb needs to write to it. "
                "Set BOONB_DB_PATH (or BOONB_PROJECT) to a writable place."
            )
        if not os.access(path, os.R_OK | os.W_OK):
            raise DatabaseUnusable(
                f"{path} is not readable and writable by this user; fix its permissions "
                "or set BOONB_DB_PATH to a file you own."
            )
        return
    parent = _nearest_existing(path.parent)
    if parent.is_dir() and _read_only_mount(parent):
        raise DatabaseUnusable(
            f"cannot create {path}: {parent} is on a read-only filesystem. "
            "Set BOONB_DB_PATH (or BOONB_PROJECT) to a writable place."
        )
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseUnusable(
            f"cannot create {path}: {parent} is not a writable directory. "
            "Set BOONB_DB_PATH (or BOONB_PROJECT) to a writable place."
        )


def _check_whole(path: Path, header: bytes) -> None:
    """Refuse a file that lost its end (a truncated copy, a disk that filled mid-write).

    DuckDB's file is its headers followed by blocks; it cuts the file only at a block
    boundary (dropping free blocks at the end), and a process killed while the file grew
    can leave part of a block past the end. So a file is damaged when the blocks in use do
    not all fit in it whole. A file that looks
    whole needs nothing more; one that does not is measured again while holding DuckDB's
    shared lock, so another process's write in progress (which grows the file a page at a
    time) is never mistaken for damage.
    """
    layout = _layout(header)
    if layout is None:
        _refuse_damaged(path, "its header is cut off")
        return
    block_count, block_size = layout
    whole = _whole_blocks(path.stat().st_size, block_size)
    if whole is not None and whole >= block_count:
        return  # looks whole: no need to take the file to look closer
    with _CONNECTING:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            return  # held by another (so in use), or unreadable: opening will say which
        try:
            # A process killed while DuckDB grew the file can leave a part of a block at its
            # end, past every block in use: that file is healthy. Only blocks in use that are
            # not whole in the file make it damaged.
            size = path.stat().st_size
            whole, part = divmod(size - _HEADERS_END, block_size)
            if whole < block_count:  # trailing blocks gone: fine if none was in use
                row = con.execute("SELECT used_blocks FROM pragma_database_size()").fetchone()
                used = int(row[0]) if row is not None else 0
                if used > whole:
                    lost = f"{used} blocks are in use but only {whole} are there"
                    if part:
                        lost = f"it ends inside a block: {size:,} bytes, and {lost}"
                    _refuse_damaged(path, lost)
        finally:
            con.close()


def _whole_blocks(size: int, block_size: int) -> int | None:
    """How many blocks follow the headers; None when the file ends inside one."""
    blocks, remainder = divmod(size - _HEADERS_END, block_size)
    return None if remainder else blocks


def _refuse_damaged(path: Path, found: str) -> None:
    raise DatabaseDamaged(
        f"{path} is damaged ({found}); boonb will not read or write it. "
        f"Move it aside (mv {path} {path}.damaged) and run again: boonb then starts a "
        "new, empty database there. Restore it from a backup if you have one."
    )


def _layout(header: bytes) -> tuple[int, int] | None:
    """Block count and block size from the newer of the two database headers."""
    if len(header) < _HEADERS_END:
        return None
    newest: tuple[int, int, int] | None = None
    for offset in _DATABASE_HEADER_OFFSETS:
        _, iteration, _, _, block_count, block_size = struct.unpack_from("<6Q", header, offset)
        if newest is None or iteration > newest[0]:
            newest = (iteration, block_count, block_size)
    assert newest is not None
    _, block_count, block_size = newest
    return (block_count, block_size) if block_size else None


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class Database:
    """One DuckDB file, opened on demand and released when idle.

    Use :meth:`connection` for every access; it serialises this process's users
    (a DuckDB connection must not be shared between threads at once).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        lock_timeout: float = 30.0,
        linger: float = 0.05,
        max_hold: float = 0.25,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self.lock_timeout = lock_timeout
        self.linger = linger
        self.max_hold = max_hold
        self._opened_at = 0.0
        self._yield_until = 0.0
        self._lock = threading.RLock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._release_timer: threading.Timer | None = None
        self._cursor_key: bytes | None = None
        _open_databases.add(self)
        check_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.connection() as con:
                migrate(con, schema_sql())
                self._cursor_key = _cursor_key(con)
        except BaseException:
            self.close()  # refused (e.g. from a newer boonb) or failed: let go of it at once
            raise

    @property
    def cursor_key(self) -> bytes:
        """Per-database secret that signs pagination cursors."""
        assert self._cursor_key is not None
        return self._cursor_key

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the file for the duration of the block (reusing a lingering handle)."""
        with self._lock:
            if self._release_timer is not None:
                self._release_timer.cancel()
                self._release_timer = None
            if self._conn is None:
                self._conn = self._open()
                self._opened_at = time.monotonic()
            try:
                yield self._conn
            finally:
                self._schedule_release()

    def close(self) -> None:
        """Let go of the file now."""
        with self._lock:
            if self._release_timer is not None:
                self._release_timer.cancel()
                self._release_timer = None
            self._close_now()

    def _open(self) -> duckdb.DuckDBPyConnection:
        pause = self._yield_until - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            try:
                with _CONNECTING:
                    return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                # An IO error is most often another process's lock (or a passing fault):
                # both deserve a retry.
                if time.monotonic() + delay > deadline:
                    raise DatabaseLocked(
                        f"{self.path} could not be opened for {self.lock_timeout:g} s "
                        f"({exc}). If another program holds it, close that program or "
                        "raise BOONB_LOCK_TIMEOUT_S; if the file is damaged, move it aside."
                    ) from None
                # Jitter keeps two waiting processes from retrying in lockstep.
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.02)

    def _schedule_release(self) -> None:
        now = time.monotonic()
        if now - self._opened_at > self.max_hold:
            # Held long enough: let go, and stay away briefly so a waiting process gets in.
            self._close_now()
            self._yield_until = now + self.max_hold / 4
            return
        if self.linger <= 0:
            self._close_now()
            return
        timer = threading.Timer(self.linger, lambda: self._release_if_idle(timer))
        timer.daemon = True
        self._release_timer = timer
        timer.start()

    def _release_if_idle(self, timer: threading.Timer) -> None:
        # Non-blocking: whoever holds the lock is using the file and re-arms a timer.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._release_timer is not timer:
                return
            self._release_timer = None
            self._close_now()
        finally:
            self._lock.release()

    def _close_now(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # A lingering handle is closed by a timer thread. If the interpreter ends while that
    # thread is inside DuckDB, the process aborts (exit code 134); closing here is safe.
    for db in list(_open_databases):
        db.close()


def _cursor_key(con: duckdb.DuckDBPyConnection) -> bytes:
    con.execute(
        "INSERT INTO boonb_meta VALUES ('cursor_key', ?) ON CONFLICT DO NOTHING",
        [secrets.token_hex(32)],
    )
    row = con.execute("SELECT value FROM boonb_meta WHERE key = 'cursor_key'").fetchone()
    assert row is not None
    return bytes.fromhex(row[0])
