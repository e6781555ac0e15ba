"""The tasks of a project, as this kernel sees, starts and runs them (DESIGN section 7b).

:class:`Tasks` is the one service behind the subagent tools, ``boonb.spawn`` and the tasks
pane. ``spawn`` records a ``pending`` row and returns at once; the worker on the engine
(:mod:`boonb.background.worker`) runs this kernel's pending tasks in order, at most
``BACKGROUND_MAX_CONCURRENT`` at once. Every change of a task is a ``task:update`` frame on
the bus and an upsert of its row through the store's writer, so nobody on the agent's path
waits on the disk. Tasks of other kernels are read from the table; those whose kernel died
read as ``interrupted``.

Thread-safety: the methods may be called from any thread (a cell on the kernel's main
thread, a tool on the engine). A task this kernel runs is changed on the engine's thread
only, so its frames go out in order; a change asked for from another thread is handed
over and waited for. The lock guards the in-memory maps only and is never held while a
frame is published: a subscriber may call back into the service from any thread.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import JsonValue

from boonb.agent.factory import AgentFactory
from boonb.agent.recorder import TraceParent
from boonb.agent.tools.registry import ToolRegistry
from boonb.attachments import AttachmentRef
from boonb.background.errors import (
    InvalidTask,
    NotYourTask,
    SpawnRefused,
    TaskStateError,
    UnknownTask,
)
from boonb.background.live import LiveTask
from boonb.background.models import (
    RETRYABLE,
    TASK_TYPE,
    TERMINAL,
    TaskOutcome,
    TaskPayload,
    TaskResult,
)
from boonb.background.records import (
    LiveView,
    after_model_call,
    after_tool_start,
    already_ended,
    make_payload,
    parse_task_id,
    shown_state,
    task_row,
    utc_now,
)
from boonb.background.worker import Worker
from boonb.bus import Bus
from boonb.config import Settings
from boonb.engine import Engine
from boonb.executors import Executor
from boonb.executors.local import LocalExecutor
from boonb.frames import ModelCallComplete, TaskProgress, TaskState, TaskUpdate, ToolTraceStart
from boonb.store import Store
from boonb.store import tasks as task_rows
from boonb.store.liveness import process_alive

SUBAGENT_TOOL_NAMES = ("spawn_subagent", "subagent_status", "subagent_result")
DEFAULT_MAX_DEPTH = 2
LIST_LIMIT = 500

T = TypeVar("T")


class Tasks:
    """The project's background tasks: spawn, look at, collect, cancel and retry them.

    Built from the parts it uses, as the workflow manager is: ``store`` and ``settings``
    are read at each use (``%boonb config`` may change them), ``agents`` builds each
    subagent, ``tools`` is the kernel's registry (a subagent's tools come from it).
    ``executor`` gives, at each start, where subagents run (the runtime's, which the
    settings can change); by default, here, on ``agents``.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        bus: Bus,
        store: Callable[[], Store],
        settings: Callable[[], Settings],
        agents: AgentFactory,
        tools: ToolRegistry,
        session_id: uuid.UUID,
        max_depth: int = DEFAULT_MAX_DEPTH,
        executor: Callable[[], Executor] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self._store = store
        self._settings = settings
        self.agents = agents
        self.tools = tools
        local = LocalExecutor(agents)
        self._executor = executor or (lambda: local)
        self.owner = str(session_id)
        """This kernel's session id, as the ``owner`` of the tasks it runs."""
        self.max_depth = max_depth
        """Deepest subagent allowed: 2 lets a subagent spawn, not its subagents."""
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._live: dict[uuid.UUID, LiveTask] = {}
        self._queue: deque[uuid.UUID] = deque()
        self._by_chat: dict[uuid.UUID, uuid.UUID] = {}
        self._unannounced: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._worker: Worker | None = None
        self._closed = False
        self._retried: set[uuid.UUID] = set()
        """Tasks this kernel has retried: each is retried once (its new attempt can be)."""
        self._unsubscribe = bus.subscribe(
            self._on_frame, types=("model_call:complete", "tool_trace:start")
        )

    @property
    def store(self) -> Store:
        return self._store()

    @property
    def settings(self) -> Settings:
        return self._settings()

    @property
    def executor(self) -> Executor:
        """Where the next subagent runs."""
        return self._executor()

    # The public interface.

    def spawn(
        self,
        prompt: str,
        *,
        model: str | None = None,
        tools: Sequence[str] | None = None,
        budget: int | None = None,
        max_turns: int = 10,
        metadata: dict[str, JsonValue] | None = None,
        parent: TraceParent | None = None,
        spawned_by: uuid.UUID | None = None,
        images: Sequence[AttachmentRef] = (),
    ) -> TaskUpdate:
        """Record a new ``pending`` task and return it at once; the worker runs it soon.

        ``tools`` names tools of the kernel (None: all but the subagent tools).
        ``parent`` is the tool call that spawns it (its chat hangs there in the trace tree);
        ``spawned_by`` the spawning agent's chat, which is told when the task finishes and
        is the only agent that may ask about it. Raises :class:`InvalidTask` for arguments
        that cannot run and :class:`SpawnRefused` past the depth limit.
        """
        depth = self._depth_of(spawned_by) + 1
        if depth > self.max_depth:
            raise SpawnRefused(
                f"cannot spawn a subagent here: that would be {depth} levels deep and the "
                f"limit is {self.max_depth}. Do the work yourself, or return and let the "
                "agent above you spawn it."
            )
        payload = make_payload(
            prompt=prompt,
            images=list(images),
            model=model,
            tools=None if tools is None else list(tools),
            budget=budget,
            max_turns=max_turns,
            metadata=dict(metadata or {}),
            depth=depth,
        )
        self._check_tools(payload)
        return self._enqueue(
            payload, parent=parent, parent_chat_id=spawned_by, attempt=1, retry_of=None
        )

    def get(self, task_id: uuid.UUID | str) -> TaskUpdate:
        """The task as it is now (any kernel's); :class:`UnknownTask` if there is none."""
        return self._find(task_id).update

    def list(
        self,
        *,
        limit: int = LIST_LIMIT,
        spawned_by: uuid.UUID | None = None,
        before: task_rows.TaskCursor | None = None,
    ) -> builtins.list[TaskUpdate]:
        """The project's tasks (all kernels), newest first (created_at, then id).

        This kernel's tasks as they are in memory (fresher than the table); other kernels'
        from the table, those of a kernel that died as ``interrupted``. ``spawned_by``: only
        the tasks that chat's agent spawned; ``before``: only those after that place (the
        next page).
        """
        stored = task_rows.recent(self.store.db, limit=limit, spawned_by=spawned_by, before=before)
        stored = self._interrupt_dead(stored)
        found = {s.update.task_id: s.update for s in stored}
        for live in self.live_tasks(spawned_by=spawned_by):
            if before is None or before.precedes(live):
                found[live.task_id] = live
        newest = sorted(found.values(), key=lambda u: (u.created_at, str(u.task_id)), reverse=True)
        return newest[:limit]

    def live_tasks(self, *, spawned_by: uuid.UUID | None = None) -> builtins.list[TaskUpdate]:
        """The tasks this kernel owns, as they are now (in memory, no disk read); any order."""
        with self._lock:
            updates = [live.update for live in self._live.values()]
        return [u for u in updates if spawned_by is None or u.parent_chat_id == spawned_by]

    def others_now(
        self, *, spawned_by: uuid.UUID | None = None
    ) -> tuple[builtins.list[uuid.UUID], task_rows.TaskCounts]:
        """Other kernels' pending and running tasks (ids), and how many tasks they own and run.

        Read from the table, without the tasks themselves (cheap for thousands). Those of a
        kernel that died are marked ``interrupted`` first, and counted so.
        """
        db = self.store.db
        active: builtins.list[uuid.UUID] = []
        dead: builtins.list[uuid.UUID] = []
        for task_id, pid, host in task_rows.active_of_others(db, self.owner, spawned_by=spawned_by):
            gone = host == self.host and pid != self.pid and not process_alive(pid)
            (dead if gone else active).append(task_id)
        if dead:
            task_rows.mark_interrupted(db, dead, now=utc_now())
        return active, task_rows.count_of_others(db, self.owner, spawned_by=spawned_by)

    def others_to_watch(
        self, *, also: Sequence[uuid.UUID] = (), spawned_by: uuid.UUID | None = None
    ) -> tuple[builtins.list[TaskUpdate], task_rows.TaskCounts]:
        """Other kernels' tasks to poll, and how many tasks they own and run.

        To poll: those pending or running, and those named in ``also`` (seen active
        before, they may have ended). Those of a kernel that died read ``interrupted``,
        and are counted so.
        """
        db = self.store.db
        stored = task_rows.others_to_watch(db, self.owner, also=also, spawned_by=spawned_by)
        watched = [s.update for s in self._interrupt_dead(stored)]
        return watched, task_rows.count_of_others(db, self.owner, spawned_by=spawned_by)

    def result(self, task_id: uuid.UUID | str) -> TaskOutcome:
        """The task and, once it completed, its result, which this marks ``read``.

        Not an error when it has no result yet: ``outcome.result`` is None and
        ``outcome.task`` says where it stands.
        """
        task_id = parse_task_id(task_id)
        with self._lock:
            live = self._live.get(task_id)
        if live is not None:
            return self._on_engine(lambda: self._collect(live))
        stored = self._find(task_id)
        task, result = task_rows.collect_result(
            self.store.db, stored.update, stored.result, now=utc_now()
        )
        if result is None:
            return TaskOutcome(task=task)
        return TaskOutcome(task=task, result=TaskResult.model_validate(result))

    def cancel(self, task_id: uuid.UUID | str) -> TaskUpdate:
        """Stop a pending or running task.

        This kernel's task stops at once (a running agent's open traces close as
        ``cancelled``). Another kernel's is asked to (``cancel_requested``); its owner
        carries it out within ``BACKGROUND_POLL_INTERVAL_S``. Raises
        :class:`TaskStateError` for a task that has already ended.
        """
        task_id = parse_task_id(task_id)
        with self._lock:
            live = self._live.get(task_id)
        if live is not None:
            return self._on_engine(lambda: self._cancel_live(live))
        stored = self._find(task_id)
        if stored.update.state in TERMINAL:
            raise already_ended(stored.update, "cancel")
        if not task_rows.request_cancel(self.store.db, task_id, now=utc_now()):
            raise already_ended(self._find(task_id).update, "cancel")
        return dataclasses.replace(stored.update, cancel_requested=True)

    def retry(self, task_id: uuid.UUID | str) -> TaskUpdate:
        """Run a failed, cancelled or interrupted task again in this kernel.

        The new task has the same payload, ``attempt`` one more and ``retry_of`` the old
        task's id, and hangs under the same tool call. Returns it (``pending``).
        """
        stored = self._find(task_id)
        old = stored.update
        if old.state not in RETRYABLE:
            raise TaskStateError(
                f"task {old.task_id} is {shown_state(old.state)}; only a failed, cancelled or "
                "interrupted task can be retried"
                + ("" if old.state in TERMINAL else f" (cancel it first: cancel {old.task_id})")
            )
        with self._lock:  # a double click, or two cells at once, must not run it twice
            again = old.task_id in self._retried
            self._retried.add(old.task_id)
            newer = next(
                (i for i, live in self._live.items() if live.update.retry_of == old.task_id), None
            )
        if newer is None:  # another kernel's retry, or one from before a restart
            newer = task_rows.retried_as(self.store.db, old.task_id)
        if again or newer is not None:
            shown = "" if newer is None else f" as task {newer}"
            raise TaskStateError(
                f"task {old.task_id} was already retried{shown}; look at the new attempt "
                "with %tasks list (retry that one if it failed too)"
            )
        payload = TaskPayload.model_validate(stored.payload)
        parent = (
            TraceParent(old.parent_trace_id, stored.parent_root_id)
            if old.parent_trace_id is not None and stored.parent_root_id is not None
            else None
        )
        return self._enqueue(
            payload,
            parent=parent,
            parent_chat_id=stored.parent_chat_id,
            attempt=old.attempt + 1,
            retry_of=old.task_id,
        )

    def wait(self, task_id: uuid.UUID | str, timeout: float | None = None) -> TaskUpdate:
        """Block until the task has ended and return it as it ended (or as it is at ``timeout``).

        Not from the engine's thread (a tool): await :meth:`ended` there.
        """
        task_id = parse_task_id(task_id)
        if self.engine.in_engine_thread():
            raise RuntimeError("Tasks.wait on the engine's thread would deadlock; await ended()")
        with self._lock:
            live = self._live.get(task_id)
        if live is not None:
            try:
                return live.done.result(timeout)
            except concurrent.futures.TimeoutError:
                return live.update
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # another kernel's task: only the table can tell
            update = self.get(task_id)
            if update.state in TERMINAL or (deadline is not None and time.monotonic() > deadline):
                return update
            time.sleep(self.settings.background_poll_interval_s)

    async def ended(self, task_id: uuid.UUID | str) -> TaskUpdate:
        """As :meth:`wait` without a timeout, for a coroutine (a tool on the engine)."""
        task_id = parse_task_id(task_id)
        with self._lock:
            live = self._live.get(task_id)
        if live is not None:
            return await asyncio.wrap_future(live.done)
        while True:  # another kernel's: read the table, never a thread left waiting
            update = await asyncio.to_thread(self.get, task_id)
            if update.state in TERMINAL:
                return update
            await asyncio.sleep(self.settings.background_poll_interval_s)

    def spawned_by(self, task_id: uuid.UUID | str) -> uuid.UUID | None:
        """The chat that spawned a task (None: the notebook); :class:`UnknownTask` if none."""
        task_id = parse_task_id(task_id)
        with self._lock:
            live = self._live.get(task_id)
            if live is not None:
                return live.parent_chat_id
        return self._stored(task_id).parent_chat_id

    def check_spawner(self, task_id: uuid.UUID | str, chat_id: uuid.UUID | None) -> uuid.UUID:
        """The task's id, if the agent of ``chat_id`` spawned it; :class:`NotYourTask` if not."""
        task = parse_task_id(task_id)
        if self.spawned_by(task) != chat_id:
            raise NotYourTask(
                f"task {task} was not spawned by you: you can only ask about the tasks your "
                "spawn_subagent calls returned"
            )
        return task

    def notice_for(self, chat_id: uuid.UUID) -> str | None:
        """What to tell the agent of ``chat_id`` before its next model call, or None.

        Its tasks that finished since it was last told, each told once.
        """
        with self._lock:
            finished = self._unannounced.pop(chat_id, None)
            if not finished:
                return None
            updates = [self._live[task_id].update for task_id in finished]
        lines = [
            f"- {u.task_id} ({u.title}): {shown_state(u.state)}"
            + (f": {u.error}" if u.error else "")
            for u in updates
        ]
        return (
            "Note from boonb: background tasks you spawned finished since your last turn:\n"
            + "\n".join(lines)
            + "\nCollect a completed one's answer with subagent_result."
        )

    def depth_of(self, chat_id: uuid.UUID | None) -> int:
        """How deep the agent of ``chat_id`` is: 0 for a top-level agent, 1 for a subagent."""
        return self._depth_of(chat_id)

    def close(self) -> None:
        """Stop the worker; tasks still pending read ``interrupted`` (they can be retried).

        Running ones are the engine's to cancel as it shuts down; they end ``interrupted``
        too, as no user cancelled them.
        """
        if self._closed:
            return
        self._closed = True
        worker = self._worker
        if worker is not None:
            worker.stop()
        self._on_engine(self._interrupt_pending)
        self._unsubscribe()

    def _interrupt_pending(self) -> None:
        with self._lock:
            pending = [
                live
                for live in self._live.values()
                if live.update.state == "pending" and live.runner is None
            ]
        for live in pending:
            self.finished(live, "interrupted", error="the kernel shut down before it started")

    # Used by the worker (on the engine's thread).

    def next_pending(self) -> LiveTask | None:
        """The oldest pending task of this kernel, taken off the queue."""
        with self._lock:
            while self._queue:
                live = self._live.get(self._queue.popleft())
                if live is not None and live.update.state == "pending":
                    return live
            return None

    def started(self, live: LiveTask, chat_id: uuid.UUID) -> None:
        """The worker is about to run the subagent of ``live``, whose chat is ``chat_id``.

        Only the id: the agent may be built elsewhere (on a Dask worker). Its frames are
        matched to the task by this id, and a cancel cancels the worker's asyncio task.
        """
        with self._lock:
            self._by_chat[chat_id] = live.update.task_id
        self._change(
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
        self._change(
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

    def tools_for(self, payload: TaskPayload) -> builtins.list[str]:
        """The tool names a subagent gets: as named, or all but the subagent tools."""
        if payload.tools is not None:
            return list(payload.tools)
        return [name for name in self.tools.names() if name not in SUBAGENT_TOOL_NAMES]

    def apply_requests(
        self, cancels: Sequence[uuid.UUID], claimed: Sequence[task_rows.StoredTask]
    ) -> None:
        """What other processes asked, found by the worker's poll: cancels, and tasks to run."""
        for task_id in cancels:
            with self._lock:
                found = self._live.get(task_id)
            if found is not None and found.update.state not in TERMINAL:
                self._cancel_live(found)
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
            self._add(live)

    # Internals.

    def _enqueue(
        self,
        payload: TaskPayload,
        *,
        parent: TraceParent | None,
        parent_chat_id: uuid.UUID | None,
        attempt: int,
        retry_of: uuid.UUID | None,
    ) -> TaskUpdate:
        if self._closed:
            raise TaskStateError("this kernel's tasks are closed (it is shutting down)")
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
        self._add(LiveTask(update, payload, parent, parent_chat_id))
        self._worker_for().wake()
        return update

    def _add(self, live: LiveTask) -> None:
        """A new task of this kernel: known, announced (``pending``), then queued.

        Queued last, so the worker cannot start it (and announce it ``running``) before
        it was announced ``pending``.
        """
        with self._lock:
            self._live[live.update.task_id] = live
        self._change(live)
        with self._lock:
            self._queue.append(live.update.task_id)

    def _on_engine(self, change: Callable[[], T]) -> T:
        """Run a change of a live task on the engine's thread (see the module) and wait."""
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

    def _collect(self, live: LiveTask) -> TaskOutcome:
        if live.update.state == "completed":
            self._change(live, state="read")
        return TaskOutcome(task=live.update, result=live.result)

    def _worker_for(self) -> Worker:
        with self._lock:
            if self._worker is None:
                self._worker = Worker(self)
                self._worker.start()
            return self._worker

    def ensure_worker(self) -> None:
        """Start the worker (it also polls for what other processes ask of this kernel)."""
        self._worker_for()

    def _cancel_live(self, live: LiveTask) -> TaskUpdate:
        state = live.update.state
        if state in TERMINAL:
            raise already_ended(live.update, "cancel")
        live.cancel_asked = True
        if state == "pending" and live.runner is None:
            self.finished(live, "cancelled", error="cancelled before it started")
            return live.update
        self._change(live, cancel_requested=True)
        runner = live.runner
        if runner is not None:
            self.engine.loop.call_soon_threadsafe(runner.cancel)
        return live.update

    def _change(self, live: LiveTask, **changes: Any) -> None:
        """Make ``changes`` to a task: a new frame on the bus, and its row to the writer.

        Never with the lock held (see the module).
        """
        update = dataclasses.replace(live.update, **changes) if changes else live.update
        live.update = update
        store = self.store
        store.writer.enqueue(task_row(live, owner=self.owner, pid=self.pid, host=self.host))
        if "state" in changes or not changes:
            store.writer.wake()  # a state change is news for other kernels: write it now
        self.bus.publish(update)

    def _on_frame(self, frame: Any) -> None:
        """Progress of running subagents, from their frames (on the engine's thread)."""
        if type(frame) is ModelCallComplete:
            trace = frame.trace
            live = self._live_of_chat(trace.chat_id)
            if live is None or live.update.progress is None:
                return
            self._change(live, progress=after_model_call(live.update.progress, trace))
        elif type(frame) is ToolTraceStart:
            live = self._live_of_chat(frame.chat_id)
            if live is None or live.update.progress is None:
                return
            self._change(live, progress=after_tool_start(live.update.progress, frame))

    def _live_of_chat(self, chat_id: uuid.UUID) -> LiveTask | None:
        with self._lock:
            task_id = self._by_chat.get(chat_id)
            live = None if task_id is None else self._live.get(task_id)
        return live if live is not None and live.update.state == "running" else None

    def _depth_of(self, chat_id: uuid.UUID | None) -> int:
        if chat_id is None:
            return 0
        with self._lock:
            task_id = self._by_chat.get(chat_id)
            live = None if task_id is None else self._live.get(task_id)
            return 0 if live is None else live.payload.depth

    def _check_tools(self, payload: TaskPayload) -> None:
        unknown = [name for name in payload.tools or () if name not in self.tools]
        if unknown:
            known = ", ".join(self.tools.names()) or "none"
            raise InvalidTask(
                f"unknown tool{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
                f"the tools a subagent can get: {known}"
            )

    def _find(self, task_id: uuid.UUID | str) -> task_rows.StoredTask | LiveView:
        task_id = parse_task_id(task_id)
        with self._lock:
            live = self._live.get(task_id)
            if live is not None:
                return LiveView.of(live)
        return self._stored(task_id)

    def _stored(self, task_id: uuid.UUID) -> task_rows.StoredTask:
        stored = task_rows.load(self.store.db, task_id)
        if stored is None:
            raise UnknownTask(
                f"there is no task {task_id} in this project; list the project's tasks with "
                "%tasks list"
            )
        (stored,) = self._interrupt_dead([stored])
        return stored

    def _interrupt_dead(
        self, stored: builtins.list[task_rows.StoredTask]
    ) -> builtins.list[task_rows.StoredTask]:
        """Mark ``interrupted`` the active tasks whose kernel died (of this host).

        Returns the rows as they now read.
        """
        dead = {
            s.update.task_id
            for s in stored
            if s.update.state in task_rows.ACTIVE
            and s.update.owner != self.owner
            and s.owner_host == self.host
            and s.owner_pid != self.pid
            and not process_alive(s.owner_pid)
        }
        if not dead:
            return stored
        task_rows.mark_interrupted(self.store.db, dead, now=utc_now())
        return [
            dataclasses.replace(
                s,
                update=dataclasses.replace(
                    s.update,
                    state="interrupted",
                    cancel_requested=False,
                    error=s.update.error or "the kernel running it ended before it finished",
                ),
            )
            if s.update.task_id in dead
            else s
            for s in stored
        ]

