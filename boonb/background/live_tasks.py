"""The tasks this kernel owns, in memory; every change of one a frame on the bus and a row."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from boonb.agent.recorder import TraceParent
from boonb.background.live import LiveTask
from boonb.background.models import TASK_TYPE, TERMINAL, TaskOutcome, TaskPayload, TaskResult
from boonb.background.records import (
    LiveView,
    after_model_call,
    after_tool_start,
    already_ended,
    task_row,
    utc_now,
)
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.frames import ModelCallComplete, TaskProgress, TaskState, TaskUpdate, ToolTraceStart
from boonb.store import Store
from boonb.store import tasks as task_rows

T = TypeVar("T")


class LiveTasks:
    """The tasks this kernel owns: by id, queued to start, by their subagent's chat.

    A task is changed on the engine's thread only (:meth:`on_engine` hands a change over
    from another thread and waits), so its frames go out in order. Each change is a
    ``task:update`` frame on the bus and an upsert of its row through the store's writer
    (``store`` is read at each use). The lock guards the in-memory maps only and is never
    held while a frame is published: a subscriber may call back into the service from
    any thread.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        bus: Bus,
        store: Callable[[], Store],
        owner: str,
        pid: int,
        host: str,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self._store = store
        self.owner = owner
        self.pid = pid
        self.host = host
        self._lock = threading.RLock()
        self._live: dict[uuid.UUID, LiveTask] = {}
        self._queue: deque[uuid.UUID] = deque()
        self._by_chat: dict[uuid.UUID, uuid.UUID] = {}
        self._unannounced: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._retried: set[uuid.UUID] = set()
        """Tasks this kernel has retried: each is retried once (its new attempt can be)."""

    # Lookups (any thread).

    def get(self, task_id: uuid.UUID) -> LiveTask | None:
        """The task of that id if this kernel owns it, else None."""
        with self._lock:
            return self._live.get(task_id)

    def view(self, task_id: uuid.UUID) -> LiveView | None:
        """The task of that id seen as a stored one, if this kernel owns it, else None."""
        with self._lock:
            live = self._live.get(task_id)
            if live is not None:
                return LiveView.of(live)
        return None

    def updates(self) -> list[TaskUpdate]:
        """The tasks this kernel owns, as they are now; any order."""
        with self._lock:
            return [live.update for live in self._live.values()]

    def depth_of(self, chat_id: uuid.UUID | None) -> int:
        """How deep the agent of ``chat_id`` is: 0 unless it is one of these tasks' subagents."""
        if chat_id is None:
            return 0
        with self._lock:
            task_id = self._by_chat.get(chat_id)
            live = None if task_id is None else self._live.get(task_id)
            return 0 if live is None else live.payload.depth

    def claim_retry(self, task_id: uuid.UUID) -> tuple[bool, uuid.UUID | None]:
        """Note that ``task_id`` is being retried here.

        Returns whether it was already (a double click, or two cells at once, must not run
        it twice) and the id of a live task that already retries it, if any.
        """
        with self._lock:
            again = task_id in self._retried
            self._retried.add(task_id)
            newer = next(
                (i for i, live in self._live.items() if live.update.retry_of == task_id), None
            )
        return again, newer

    def take_finished(self, chat_id: uuid.UUID) -> list[TaskUpdate] | None:
        """The tasks ``chat_id``'s agent spawned that finished since it was last told, once."""
        with self._lock:
            finished = self._unannounced.pop(chat_id, None)
            if not finished:
                return None
            return [self._live[task_id].update for task_id in finished]

    # Changes (of a task this kernel runs: on the engine's thread, see on_engine).

    def on_engine(self, change: Callable[[], T]) -> T:
        """Run a change of a live task on the engine's thread (see the class) and wait."""
        if self.engine.in_engine_thread() or not self.engine.running:
            return change()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(change())
            except BaseException as exc:  # handed to the waiting thread, raised there
                done.set_exception(exc)

        self.engine.loop.call_soon_threadsafe(run)
        return done.result()

    def add(self, live: LiveTask) -> None:
        """A new task of this kernel: known, announced (``pending``), then queued.

        Queued last, so the worker cannot start it (and announce it ``running``) before
        it was announced ``pending``.
        """
        with self._lock:
            self._live[live.update.task_id] = live
        self.change(live)
        with self._lock:
            self._queue.append(live.update.task_id)

    def add_new(
        self,
        payload: TaskPayload,
        *,
        parent: TraceParent | None,
        parent_chat_id: uuid.UUID | None,
        attempt: int,
        retry_of: uuid.UUID | None,
    ) -> TaskUpdate:
        """Record a new ``pending`` task of this kernel (see :meth:`add`) and return it."""
        update = TaskUpdate(
            task_id=uuid.uuid4(),
            task_type=TASK_TYPE,
            state="pending",
            title=payload.title(),
            parent_trace_id=parent.trace_id if parent is not None else None,
            parent_chat_id=parent_chat_id,
            owner=self.owner,
            attempt=attempt,
            retry_of=retry_of,
            created_at=utc_now(),
        )
        self.add(LiveTask(update, payload, parent, parent_chat_id))
        return update

    def apply_requests(
        self, cancels: Sequence[uuid.UUID], claimed: Sequence[task_rows.StoredTask]
    ) -> None:
        """Cancel these tasks (those still active), and take over the ``claimed`` ones."""
        for task_id in cancels:
            found = self.get(task_id)
            if found is not None and found.update.state not in TERMINAL:
                self.cancel(found)
        for stored in claimed:
            live = LiveTask(
                update=dataclasses.replace(stored.update, owner=self.owner),
                payload=TaskPayload.model_validate(stored.payload),
                parent=(
                    TraceParent(stored.update.parent_trace_id, stored.parent_root_id)
                    if stored.update.parent_trace_id and stored.parent_root_id
                    else None
                ),
                parent_chat_id=stored.parent_chat_id,
            )
            self.add(live)

    def next_pending(self) -> LiveTask | None:
        """The oldest pending task of this kernel, taken off the queue."""
        with self._lock:
            while self._queue:
                live = self._live.get(self._queue.popleft())
                if live is not None and live.update.state == "pending":
                    return live
            return None

    def started(self, live: LiveTask, chat_id: uuid.UUID) -> None:
        """The subagent of ``live``, whose chat is ``chat_id``, is about to run."""
        with self._lock:
            self._by_chat[chat_id] = live.update.task_id
        self.change(
            live,
            state="running",
            chat_id=chat_id,
            started_at=utc_now(),
            progress=TaskProgress(max_turns=live.payload.max_turns),
        )

    def finished(
        self,
        live: LiveTask,
        state: TaskState,
        *,
        result: TaskResult | None = None,
        error: str | None = None,
    ) -> None:
        """The task ended: record how, settle its waiters, and queue its notice."""
        live.result = result
        progress = live.update.progress
        if progress is not None and result is not None:
            progress = dataclasses.replace(
                progress,
                turn=result.summary.turns,
                tokens_used=result.summary.tokens_used,
                cost_usd=result.summary.cost_usd,
            )
        self.change(
            live,
            state=state,
            finished_at=utc_now(),
            error=error,
            cancel_requested=False,
            progress=progress,
        )
        if live.parent_chat_id is not None:
            with self._lock:
                self._unannounced.setdefault(live.parent_chat_id, []).append(live.update.task_id)
        if not live.done.done():
            live.done.set_result(live.update)

    def interrupt_pending(self) -> None:
        """End ``interrupted`` the tasks not started yet (the kernel shuts down)."""
        with self._lock:
            pending = [
                live
                for live in self._live.values()
                if live.update.state == "pending" and live.runner is None
            ]
        for live in pending:
            self.finished(live, "interrupted", error="the kernel shut down before it started")

    def collect(self, live: LiveTask) -> TaskOutcome:
        """The task and its result; a completed one is now ``read``."""
        if live.update.state == "completed":
            self.change(live, state="read")
        return TaskOutcome(task=live.update, result=live.result)

    def cancel(self, live: LiveTask) -> TaskUpdate:
        """Stop the task: at once if not started, else by cancelling its runner."""
        state = live.update.state
        if state in TERMINAL:
            raise already_ended(live.update, "cancel")
        live.cancel_asked = True
        if state == "pending" and live.runner is None:
            self.finished(live, "cancelled", error="cancelled before it started")
            return live.update
        self.change(live, cancel_requested=True)
        runner = live.runner
        if runner is not None:
            self.engine.loop.call_soon_threadsafe(runner.cancel)
        return live.update

    def change(self, live: LiveTask, **changes: Any) -> None:
        """Make ``changes`` to a task: a new frame on the bus, and its row to the writer.

        Never with the lock held (see the class).
        """
        update = dataclasses.replace(live.update, **changes) if changes else live.update
        live.update = update
        store = self._store()
        store.writer.enqueue(task_row(live, owner=self.owner, pid=self.pid, host=self.host))
        if "state" in changes or not changes:
            store.writer.wake()  # a state change is news for other kernels: write it now
        self.bus.publish(update)

    def on_frame(self, frame: Any) -> None:
        """Progress of running subagents, from their frames (on the engine's thread)."""
        if type(frame) is ModelCallComplete:
            trace = frame.trace
            live = self._running_of_chat(trace.chat_id)
            if live is None or live.update.progress is None:
                return
            self.change(live, progress=after_model_call(live.update.progress, trace))
        elif type(frame) is ToolTraceStart:
            live = self._running_of_chat(frame.chat_id)
            if live is None or live.update.progress is None:
                return
            self.change(live, progress=after_tool_start(live.update.progress, frame))

    def _running_of_chat(self, chat_id: uuid.UUID) -> LiveTask | None:
        with self._lock:
            task_id = self._by_chat.get(chat_id)
            live = None if task_id is None else self._live.get(task_id)
        return live if live is not None and live.update.state == "running" else None
