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
over and waited for. This kernel's tasks in memory, and their changes, are
:class:`~boonb.background.live_tasks.LiveTasks`; the table's view of all kernels' tasks is
:class:`~boonb.background.stored.StoredTasks`.
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
from collections.abc import Callable, Sequence

from pydantic import JsonValue

from boonb.agent.factory import AgentFactory
from boonb.agent.recorder import TraceParent
from boonb.agent.tools.registry import ToolRegistry
from boonb.attachments import AttachmentRef
from boonb.background.checks import check_depth, check_not_retried, check_retryable, check_tools
from boonb.background.errors import NotYourTask, TaskStateError
from boonb.background.live import LiveTask
from boonb.background.live_tasks import LiveTasks
from boonb.background.models import TERMINAL, TaskOutcome, TaskPayload, TaskResult
from boonb.background.records import (
    LiveView,
    already_ended,
    make_payload,
    parse_task_id,
    shown_state,
    utc_now,
)
from boonb.background.stored import StoredTasks
from boonb.background.worker import Worker
from boonb.bus import Bus
from boonb.config import Settings
from boonb.engine import Engine
from boonb.executors import Executor
from boonb.executors.local import LocalExecutor
from boonb.frames import TaskState, TaskUpdate
from boonb.store import Store
from boonb.store import tasks as task_rows

SUBAGENT_TOOL_NAMES = ("spawn_subagent", "subagent_status", "subagent_result")
DEFAULT_MAX_DEPTH = 2
LIST_LIMIT = 500


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
        self._live = LiveTasks(
            engine=engine, bus=bus, store=store, owner=self.owner, pid=self.pid, host=self.host
        )
        """This kernel's tasks, in memory."""
        self._table = StoredTasks(store, owner=self.owner, pid=self.pid, host=self.host)
        """All kernels' tasks, as the table tells them."""
        self._lock = threading.RLock()
        """Guards starting the worker once."""
        self._worker: Worker | None = None
        self._closed = False
        self._unsubscribe = bus.subscribe(
            self._live.on_frame, types=("model_call:complete", "tool_trace:start")
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
        depth = self._live.depth_of(spawned_by) + 1
        check_depth(depth, self.max_depth)
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
        check_tools(payload, self.tools)
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
        stored = self._table.recent(limit=limit, spawned_by=spawned_by, before=before)
        found = {s.update.task_id: s.update for s in stored}
        for live in self.live_tasks(spawned_by=spawned_by):
            if before is None or before.precedes(live):
                found[live.task_id] = live
        newest = sorted(found.values(), key=lambda u: (u.created_at, str(u.task_id)), reverse=True)
        return newest[:limit]

    def live_tasks(self, *, spawned_by: uuid.UUID | None = None) -> builtins.list[TaskUpdate]:
        """The tasks this kernel owns, as they are now (in memory, no disk read); any order."""
        updates = self._live.updates()
        return [u for u in updates if spawned_by is None or u.parent_chat_id == spawned_by]

    def others_now(
        self, *, spawned_by: uuid.UUID | None = None
    ) -> tuple[builtins.list[uuid.UUID], task_rows.TaskCounts]:
        """Other kernels' pending and running tasks (ids), and how many tasks they own and run.

        Read from the table, without the tasks themselves (cheap for thousands). Those of a
        kernel that died are marked ``interrupted`` first, and counted so.
        """
        return self._table.others_now(spawned_by=spawned_by)

    def others_to_watch(
        self, *, also: Sequence[uuid.UUID] = (), spawned_by: uuid.UUID | None = None
    ) -> tuple[builtins.list[TaskUpdate], task_rows.TaskCounts]:
        """Other kernels' tasks to poll, and how many tasks they own and run.

        To poll: those pending or running, and those named in ``also`` (seen active
        before, they may have ended). Those of a kernel that died read ``interrupted``,
        and are counted so.
        """
        return self._table.others_to_watch(also=also, spawned_by=spawned_by)

    def result(self, task_id: uuid.UUID | str) -> TaskOutcome:
        """The task and, once it completed, its result, which this marks ``read``.

        Not an error when it has no result yet: ``outcome.result`` is None and
        ``outcome.task`` says where it stands.
        """
        task_id = parse_task_id(task_id)
        live = self._live.get(task_id)
        if live is not None:
            return self._live.on_engine(lambda: self._live.collect(live))
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
        live = self._live.get(task_id)
        if live is not None:
            return self._live.on_engine(lambda: self._live.cancel(live))
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
        check_retryable(old)
        # A double click, or two cells at once, must not run it twice.
        again, newer = self._live.claim_retry(old.task_id)
        if newer is None:  # another kernel's retry, or one from before a restart
            newer = task_rows.retried_as(self.store.db, old.task_id)
        check_not_retried(old, again=again, newer=newer)
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
        live = self._live.get(task_id)
        if live is not None:
            return live.parent_chat_id
        return self._table.load(task_id).parent_chat_id

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
        updates = self._live.take_finished(chat_id)
        if updates is None:
            return None
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
        return self._live.depth_of(chat_id)

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
        self._live.on_engine(self._live.interrupt_pending)
        self._unsubscribe()

    # Used by the worker (on the engine's thread).

    def next_pending(self) -> LiveTask | None:
        """The oldest pending task of this kernel, taken off the queue."""
        return self._live.next_pending()

    def started(self, live: LiveTask, chat_id: uuid.UUID) -> None:
        """The worker is about to run the subagent of ``live``, whose chat is ``chat_id``.

        Only the id: the agent may be built elsewhere (on a Dask worker). Its frames are
        matched to the task by this id, and a cancel cancels the worker's asyncio task.
        """
        self._live.started(live, chat_id)

    def finished(
        self,
        live: LiveTask,
        state: TaskState,
        *,
        result: TaskResult | None = None,
        error: str | None = None,
    ) -> None:
        """The task ended: record how, settle its waiters, and queue its notice."""
        self._live.finished(live, state, result=result, error=error)

    def tools_for(self, payload: TaskPayload) -> builtins.list[str]:
        """The tool names a subagent gets: as named, or all but the subagent tools."""
        if payload.tools is not None:
            return list(payload.tools)
        return [name for name in self.tools.names() if name not in SUBAGENT_TOOL_NAMES]

    def apply_requests(
        self, cancels: Sequence[uuid.UUID], claimed: Sequence[task_rows.StoredTask]
    ) -> None:
        """What other processes asked, found by the worker's poll: cancels, and tasks to run."""
        self._live.apply_requests(cancels, claimed)

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
        update = self._live.add_new(
            payload,
            parent=parent,
            parent_chat_id=parent_chat_id,
            attempt=attempt,
            retry_of=retry_of,
        )
        self._worker_for().wake()
        return update

    def _worker_for(self) -> Worker:
        with self._lock:
            if self._worker is None:
                self._worker = Worker(self)
                self._worker.start()
            return self._worker

    def ensure_worker(self) -> None:
        """Start the worker (it also polls for what other processes ask of this kernel)."""
        self._worker_for()

    def _find(self, task_id: uuid.UUID | str) -> task_rows.StoredTask | LiveView:
        task_id = parse_task_id(task_id)
        view = self._live.view(task_id)
        if view is not None:
            return view
        return self._table.load(task_id)
