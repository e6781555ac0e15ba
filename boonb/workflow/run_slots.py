"""How many workflow runs go at once: first come, first served, under a limit one can change."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable


class RunSlots:
    """An ``asyncio.Semaphore`` whose size is asked for each time a run wants or frees a slot.

    So ``%boonb config workflow_max_concurrent=N`` applies at once: a larger limit lets
    waiting runs start (:meth:`limit_changed`), a smaller one lets the runs going finish and
    starts no more until they are under it. Waiting runs get their slots in the order they
    came. Used on the engine's thread only.
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> int:
        """Slots taken now."""
        return self._busy

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot and hold it for the block."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._hand_out()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):  # not if a hand-out skipped it already
                    self._waiting.remove(waiter)
            else:  # the slot came as the run was cancelled: give it to the next one
                self._free()
            raise
        try:
            yield
        finally:
            self._free()

    def limit_changed(self) -> None:
        """The limit may be larger now: start the waiting runs it lets in."""
        self._hand_out()

    def _free(self) -> None:
        self._busy -= 1
        self._hand_out()

    def _hand_out(self) -> None:
        while self._waiting and self._busy < self._limit():
            waiter = self._waiting.popleft()
            if waiter.cancelled():  # its run was cancelled while it waited
                continue
            self._busy += 1
            waiter.set_result(None)
