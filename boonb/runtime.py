"""The kernel's one boonb runtime: settings, bus, engine and store, wired together.

The store opens on first use (so importing boonb never touches the disk), records
this kernel session, and subscribes its writer to the bus. At interpreter exit the
engine winds down and the writer flushes.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from boonb import config
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.store import STORED_FRAME_TYPES, Row, Store, make_row


class Runtime:
    def __init__(self, settings: config.Settings | None = None) -> None:
        self._settings_override = settings
        self.session_id = uuid.uuid4()
        self.started_at = datetime.now(UTC)
        self.bus = Bus()
        self.engine = Engine()
        self._store: Store | None = None
        self._unsubscribe_store = lambda: None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def settings(self) -> config.Settings:
        return self._settings_override or config.get_settings()

    @property
    def store(self) -> Store:
        """The project database, opened on first use (raises StoreError if unusable)."""
        with self._lock:
            settings = self.settings
            if self._store is None or self._store.path != _resolved(settings.database):
                self._open_store()
            assert self._store is not None
            # Settings can change at run time (%boonb config); apply the cheap ones in place.
            self._store.writer.flush_interval = settings.flush_interval_ms / 1000
            self._store.db.lock_timeout = settings.lock_timeout_s
            return self._store

    def _open_store(self) -> None:
        settings = self.settings
        store = Store(
            settings.database,
            flush_interval=settings.flush_interval_ms / 1000,
            lock_timeout=settings.lock_timeout_s,
        )
        self._close_store()
        self._store = store
        self._unsubscribe_store = self.bus.subscribe(store.writer.enqueue, types=STORED_FRAME_TYPES)
        store.writer.enqueue(self._session_row(ended_at=None))

    def _close_store(self) -> None:
        if self._store is None:
            return
        self._unsubscribe_store()
        self._store.writer.enqueue(self._session_row(ended_at=datetime.now(UTC)))
        self._store.close()
        self._store = None

    def _session_row(self, *, ended_at: datetime | None) -> Row:
        values = {
            "id": self.session_id,
            "project": str(self.settings.project),
            "kernel_pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started_at": self.started_at,
            "ended_at": ended_at,
        }
        return make_row("sessions", values, action="upsert")

    def shutdown(self) -> None:
        """Stop the engine (cancelling its work cleanly), then flush and release the store."""
        if self._closed:
            return
        self._closed = True
        self.engine.shutdown()
        with self._lock:
            self._close_store()


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, created on first use and shut down at exit."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
            atexit.register(_runtime.shutdown)
        return _runtime
