"""Thread-safe publish/subscribe of frames inside the kernel.

Publishing calls each subscriber on the publisher's thread, so a subscriber must be
quick (enqueue, send a comm message) and must not block. Subscriber lists are
copy-on-write, so publishing takes no lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from boonb.frames import Frame

log = logging.getLogger("boonb.bus")

Handler = Callable[[Frame], None]


class Bus:
    """Publish/subscribe of frames in the kernel: agents publish; store, widgets, exporters listen.

    ``subscribe(handler, types=...)`` returns the function that unsubscribes; ``publish``
    calls each matching handler on the publisher's thread, so handlers must be quick.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[tuple[Handler, frozenset[str] | None]] = []
        self._by_type: dict[str, tuple[Handler, ...]] = {}
        self._all: tuple[Handler, ...] = ()

    def subscribe(
        self, handler: Handler, *, types: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Call ``handler`` for each frame (or each of ``types``); returns an unsubscribe."""
        entry = (handler, frozenset(types) if types is not None else None)
        with self._lock:
            self._subscriptions.append(entry)
            self._rebuild()

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscriptions:
                    self._subscriptions.remove(entry)
                    self._rebuild()

        return unsubscribe

    def wants(self, frame_type: str) -> bool:
        """Whether anyone would receive a frame of this type (so it is worth building)."""
        return bool(self._by_type.get(frame_type, self._all))

    def publish(self, frame: Frame) -> None:
        """Deliver ``frame``; a failing subscriber is logged and does not stop the others."""
        for handler in self._by_type.get(frame.type, self._all):
            try:
                handler(frame)
            except Exception:
                log.exception("bus: subscriber %r failed on a %s frame", handler, frame.type)

    def _rebuild(self) -> None:
        everything = tuple(h for h, types in self._subscriptions if types is None)
        named = {t for _, types in self._subscriptions if types for t in types}
        self._all = everything
        self._by_type = {
            t: tuple(h for h, types in self._subscriptions if types is None or t in types)
            for t in named
        }
