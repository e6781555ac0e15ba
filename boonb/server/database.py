"""The project database, opened once for the whole server extension.

Every REST read (traces, lists, runs, views, the sidebar's activity) goes through the one
:class:`boonb.store.Database` this holds, so a burst of requests to different endpoints
(the sidebar's activity poll and a tasks frames poll in the same second) shares one
lingering handle rather than each endpoint's own opening the file again (20-45 ms each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from boonb.store import Database


class ProjectDatabase:
    """The project's :class:`Database`, made the first time it is asked for once the file exists.

    The server never creates the database: until a kernel wrote one, :meth:`get` is None.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout: float,
        on_open: Callable[[Database], None] | None = None,
    ) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._on_open = on_open
        self._db: Database | None = None
        self._lock = threading.Lock()

    def get(self) -> Database | None:
        """The database, or None while the file does not exist."""
        with self._lock:
            if self._db is None and self.path.exists():
                self._db = Database(self.path, lock_timeout=self.lock_timeout)
                if self._on_open is not None:
                    self._on_open(self._db)
            return self._db


__all__ = ["ProjectDatabase"]
