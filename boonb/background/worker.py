"""The worker: runs this kernel's pending tasks on the engine, and hears what others ask.

It starts the oldest pending task whenever fewer than ``BACKGROUND_MAX_CONCURRENT`` run,
woken at once by a spawn in this kernel or a task's end. Every
``BACKGROUND_POLL_INTERVAL_S`` it reads the table (in a thread, never on the loop) for
cancels other processes asked of this kernel's tasks and for pending tasks nobody owns
(a retry asked for elsewhere), which it takes over.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from boonb.agent.factory import AgentFactory
from boonb.agent.loop import AgentResult
from boonb.background.live import LiveTask
from boonb.background.models import SUBAGENT_ID_PREFIX, TaskPayload, TaskResult, TaskSummary
from boonb.config import Settings
from boonb.engine import Engine
from boonb.errors import BoonbError
from boonb.executors import AgentRunSpec, Executor
from boonb.frames import TaskState
from boonb.store import Database, Store
from boonb.store import tasks as task_rows

log = logging.getLogger("boonb.background")
T = TypeVar("T")


class TaskHost(Protocol):
    """What the worker needs of the tasks service (:class:`boonb.background.Tasks`)."""

    engine: Engine
    agents: AgentFactory
    owner: str
    pid: int
    host: str

    @property
    def store(self) -> Store: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def executor(self) -> Executor: ...
    def next_pending(self) -> LiveTask | None: ...
    def tools_for(self, payload: TaskPayload) -> list[str]: ...
    def started(self, live: LiveTask, chat_id: uuid.UUID) -> None: ...
    def finished(
        self,
        live: LiveTask,
        state: TaskState,
        *,
        result: TaskResult | None = None,
        error: str | None = None,
    ) -> None: ...
    def apply_requests(
        self, cancels: Sequence[uuid.UUID], claimed: Sequence[task_rows.StoredTask]
    ) -> None: ...


class Worker:
    """The loop on the engine that starts and ends this kernel's tasks (see the module)."""

    def __init__(self, tasks: TaskHost) -> None:
        self.tasks = tasks
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._runners: set[asyncio.Task[None]] = set()
        self._stopped = False

    def start(self) -> None:
        """Start on the engine, in a context of its own.

        A spawn from a tool runs inside that tool call's context; a worker started there
        would make every subagent it builds hang under that one call in the trace tree.
        """
        loop = self.tasks.engine.loop
        loop.call_soon_threadsafe(self._launch, context=contextvars.Context())

    def wake(self) -> None:
        """Look at the queue now (from any thread)."""
        self.tasks.engine.loop.call_soon_threadsafe(self._set_wake)

    def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self.tasks.engine.loop.call_soon_threadsafe(self._task.cancel)

    def _launch(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="boonb-tasks")

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        next_poll = time.monotonic()
        while not self._stopped:
            self._start_ready()
            wait = next_poll - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                self._wake.clear()
                continue
            try:
                await self._poll()
            except _NoMoreThreads:  # the interpreter is exiting, before the runtime closes
                return
            except Exception as exc:
                if self._stopped:  # the kernel closed the store under a last poll: nothing lost
                    return
                if isinstance(exc, BoonbError):  # a locked or full database: try again later
                    log.warning("background tasks: could not read the tasks table: %s", exc)
                else:  # never let the worker die silently
                    log.exception("background tasks: polling the tasks table failed")
            next_poll = time.monotonic() + self.tasks.settings.background_poll_interval_s

    def _start_ready(self) -> None:
        limit = self.tasks.settings.background_max_concurrent
        while len(self._runners) < limit:
            live = self.tasks.next_pending()
            if live is None:
                return
            runner = asyncio.get_running_loop().create_task(self._execute(live))
            live.runner = runner
            self._runners.add(runner)
            runner.add_done_callback(self._ended)

    def _ended(self, runner: asyncio.Task[None]) -> None:
        self._runners.discard(runner)
        self._set_wake()

    async def _poll(self) -> None:
        tasks = self.tasks
        db, owner = tasks.store.db, tasks.owner
        cancels = await _in_thread(task_rows.cancel_requests, db, owner)
        claimed = await _in_thread(
            task_rows.claim_unowned,
            db,
            owner=owner,
            pid=tasks.pid,
            host=tasks.host,
            now=datetime.now(UTC),
        )
        if claimed:
            claimed = await _in_thread(_runnable, db, claimed)
        if cancels or claimed:
            tasks.apply_requests(cancels, claimed)

    async def _execute(self, live: LiveTask) -> None:
        """Run one task's subagent to its end, and record how it ended."""
        tasks = self.tasks
        payload = live.payload
        try:
            spec = AgentRunSpec(
                chat_id=uuid.uuid4(),  # known before the run, so the task row shows its chat
                prompt=payload.prompt,
                images=tuple(payload.images),
                model=payload.model,
                tools=tuple(tasks.tools_for(payload)),
                budget=payload.budget,
                max_turns=payload.max_turns,
                agent_id=f"{SUBAGENT_ID_PREFIX}{str(live.update.task_id)[:8]}",
                parent_trace_id=live.parent.trace_id if live.parent else None,
                parent_root_id=live.parent.root_id if live.parent else None,
            )
            # What can fail before the run fails before the task says it is running: an
            # unknown tool, an executor that cannot connect. Its chat id would name no chat.
            tasks.agents.tools.resolve(spec.tools or ())
            executor = tasks.executor
            tasks.started(live, spec.chat_id)
            result = await executor.run_agent(spec)
        except asyncio.CancelledError:
            if live.cancel_asked:
                tasks.finished(live, "cancelled", error="cancelled")
            else:  # the kernel is shutting down, not a user's cancel
                tasks.finished(live, "interrupted", error="the kernel shut down before it finished")
            raise
        except BoonbError as exc:  # the model failed after its retries, a tool name went away
            tasks.finished(live, "failed", error=str(exc))
            return
        except Exception as exc:  # a bug must fail its task, not the worker
            log.exception("background task %s failed", live.update.task_id)
            tasks.finished(live, "failed", error=f"{type(exc).__name__}: {exc}")
            return
        tasks.finished(live, "completed", result=_result(result))


def _runnable(db: Database, claimed: Sequence[task_rows.StoredTask]) -> list[task_rows.StoredTask]:
    """The claimed tasks whose payload this boonb reads; the others are failed, saying why.

    One unreadable row (a hand-made one, or from another version) must not strand the
    rest of its batch, owned by this kernel but never run.
    """
    runnable = []
    for stored in claimed:
        try:
            TaskPayload.model_validate(stored.payload)
        except ValidationError as exc:
            error = (
                f"this kernel cannot read the task's payload ({exc.errors()[0]['msg']}); "
                "spawn it again"
            )
            task_rows.mark_failed(db, stored.update.task_id, error=error, now=datetime.now(UTC))
            continue
        runnable.append(stored)
    return runnable


class _NoMoreThreads(Exception):
    """The interpreter is exiting: its thread pools take no more work."""


def _in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """``function`` on the loop's default thread pool (as ``asyncio.to_thread``).

    At interpreter exit, Python stops its thread pools before atexit handlers run, so
    the worker may still be polling when the pool refuses work (``submit`` raises
    RuntimeError at once, before anything ran): the worker then stops quietly.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    try:
        return loop.run_in_executor(None, call)
    except RuntimeError:
        raise _NoMoreThreads from None


def _result(result: AgentResult) -> TaskResult:
    stats = result.stats
    return TaskResult(
        answer=result.content,
        summary=TaskSummary(
            turns=stats.turns,
            tool_calls=stats.tool_calls,
            tool_errors=stats.tool_errors,
            tokens_used=stats.usage.tokens_used,
            cost_usd=stats.cost,
            wall_time_s=result.wall_time_s,
            stop_reason=result.stop_reason,
        ),
    )
