"""The engine: one background thread running boonb's asyncio event loop.

Agents, workflows and background tasks run here, so they go on while a cell
blocks, and widget messages arriving on the kernel's main thread can hand work over
thread-safely. The kernel's own loop is never used (no ``asyncio.run``, no
``nest_asyncio``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("boonb.engine")

T = TypeVar("T")


class EngineStopped(RuntimeError):
    """Work was submitted after the engine shut down."""


class EngineFuture(concurrent.futures.Future[T]):
    """A coroutine's result, seen from another thread.

    Unlike the future of ``asyncio.run_coroutine_threadsafe``, cancelling this one asks
    the task to stop and the future only settles once the task has finished its
    cleanup, so whoever waits on it sees traces already closed and state saved.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._task: asyncio.Task[T] | None = None
        self._cancel_requested = False

    def cancel(self) -> bool:
        """Ask the task to stop; True unless it had already finished."""
        if self.done():
            return False
        self._cancel_requested = True
        self._loop.call_soon_threadsafe(self._cancel_task)
        return True

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _attach(self, task: asyncio.Task[T]) -> None:
        self._task = task
        if self._cancel_requested:
            task.cancel()
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            super().cancel()
            # Moves CANCELLED to CANCELLED_AND_NOTIFIED, which wakes concurrent.futures.wait.
            self.set_running_or_notify_cancel()
        elif (error := task.exception()) is not None:
            self.set_exception(error)
        else:
            self.set_result(task.result())


class Engine:
    """The background thread with boonb's asyncio event loop, where all runs live.

    ``submit`` hands it a coroutine from any thread and returns an ``EngineFuture``;
    ``wait`` blocks a cell on one until it ends (the kernel's interrupt cancels it), and
    ``shutdown`` cancels what is left and stops the thread.
    """

    def __init__(self, name: str = "boonb-engine") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's loop, started on first use."""
        self.start()
        assert self._loop is not None
        return self._loop

    def start(self) -> None:
        with self._lock:
            if self._stopped:
                raise EngineStopped("the boonb engine has shut down; restart the kernel")
            if self._thread is not None:
                return
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._loop = loop
            self._thread = threading.Thread(target=run, name=self._name, daemon=True)
            self._thread.start()
            ready.wait()

    def in_engine_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> EngineFuture[T]:
        """Schedule a coroutine on the engine from any thread."""
        try:
            loop = self.loop
        except EngineStopped:
            coro.close()
            raise
        future: EngineFuture[T] = EngineFuture(loop)
        loop.call_soon_threadsafe(lambda: future._attach(loop.create_task(coro)))
        return future

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        on_tick: Callable[[], None] | None = None,
        cancel_grace: float = 5.0,
    ) -> T:
        """Run a coroutine on the engine and wait for it (from a thread other than the engine's).

        See :meth:`wait` for ``on_tick`` and what a ``KeyboardInterrupt`` does.
        """
        if self.in_engine_thread():
            coro.close()
            raise RuntimeError("Engine.run on the engine's own thread would deadlock; await it")
        return self.wait(self.submit(coro), on_tick=on_tick, cancel_grace=cancel_grace)

    def wait(
        self,
        future: EngineFuture[T],
        *,
        on_tick: Callable[[], None] | None = None,
        cancel_grace: float = 5.0,
    ) -> T:
        """Wait for work on the engine from another thread (a blocking cell, say).

        ``on_tick`` is called on the waiting thread every few tens of milliseconds (to
        print what streamed in). A ``KeyboardInterrupt`` while waiting (the kernel's
        stop button) cancels the work, waits up to ``cancel_grace`` seconds for it to
        wind down, and is then raised again.
        """
        try:
            # Wait in short slices so a KeyboardInterrupt is seen promptly on any platform.
            while True:
                try:
                    return future.result(timeout=0.05 if on_tick else 0.1)
                except concurrent.futures.TimeoutError:
                    if on_tick is not None:
                        on_tick()
        except KeyboardInterrupt:
            future.cancel()
            # The future settles once the task has cleaned up (traces closed, state saved).
            concurrent.futures.wait([future], timeout=cancel_grace)
            raise

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel what is still running, let it clean up, and stop the loop."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout + 1)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("engine: tasks did not finish within %.1f s of shutdown", timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
