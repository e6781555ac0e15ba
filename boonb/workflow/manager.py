"""The workflow manager: list, run, cancel and follow workflow runs of this kernel.

Runs execute in the sandbox pool on the engine's loop, at most
``WORKFLOW_MAX_CONCURRENT`` at once; the rest wait as ``pending`` in the order they
came. Every run is recorded in ``workflow_runs``; a run a dead kernel left running
reads as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Callable
from typing import Any

from boonb.agent.factory import AgentFactory
from boonb.bus import Bus
from boonb.config import Settings
from boonb.engine import Engine, EngineFuture
from boonb.errors import WorkflowError
from boonb.executors import Executor
from boonb.executors.local import LocalExecutor
from boonb.frames import WorkflowState
from boonb.store import RunDetail, RunPage, Store, WorkflowRunStore
from boonb.store.liveness import process_alive
from boonb.store.workflow_runs import DEFAULT_RUNS_LIMIT, MAX_LOG_LINES
from boonb.workflow.cache import ResultCache
from boonb.workflow.calls import serve_call
from boonb.workflow.discovery import (
    Discovery,
    WorkflowSpec,
    default_sources,
    discover,
)
from boonb.workflow.live_runs import Entry, LiveRun, LiveRuns
from boonb.workflow.models import (
    MAX_BUDGET,
    ArgsCheck,
    RunStatus,
    WorkflowInfo,
    check_args,
    find_workflow,
    workflow_infos,
)
from boonb.workflow.models import UnknownWorkflow as UnknownWorkflow  # raised by get()
from boonb.workflow.report import RunReport
from boonb.workflow.run_cancels import poll_cancels
from boonb.workflow.run_slots import RunSlots
from boonb.workflow.run_status import progress, status_fields, status_frame
from boonb.workflow.runner import WorkflowRun
from boonb.workflow.sandbox import SandboxPool, SandboxResult

CELL = "<cell>"
KEPT_RUNS = 20
"""Ended runs whose steps and log lines this kernel keeps in memory; older ones (and their
many log lines) are let go and read back from the store."""


class UnknownRun(WorkflowError, LookupError):
    """No workflow run has that id."""


class WorkflowManager:
    """Discovers workflows, starts runs in the sandbox, and tracks, cancels and records them.

    ``run(name, args)`` and ``run_script(source, args)`` start a run on the engine and
    return its id at once; ``status``, ``wait``, ``future`` and ``cancel`` follow it,
    ``rerun`` starts it again. What the views show: ``list`` (workflows and their
    arguments), ``check_args`` (a form's arguments, checked without running), ``detail``
    (a run's pane) and ``runs`` (the project's runs), the last two for any kernel's runs.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        bus: Bus,
        store: Callable[[], Store],
        settings: Callable[[], Settings],
        agents: AgentFactory,
        session_id: uuid.UUID,
        executor: Callable[[], Executor] | None = None,
    ) -> None:
        """Built from the parts a run uses, so a test can build one without a runtime.

        ``store`` and ``settings`` are read at each use: the user can point the kernel at
        another database or change limits at run time (``%boonb config``). ``agents``
        builds every agent a run starts; ``session_id`` tags the runs of this kernel.
        ``executor`` gives, as each run starts, where its agents run (the runtime's, which
        the settings can change); by default, in this kernel, on ``agents``.
        """
        self.engine = engine
        self.bus = bus
        self._store = store
        self._settings = settings
        self.agents = agents
        local = LocalExecutor(agents)
        self._executor = executor or (lambda: local)
        self.session_id = session_id
        self._discovery: Discovery | None = None
        self._runs = LiveRuns(store=store, session_id=session_id)
        self._pool: SandboxPool | None = None
        self._slots = RunSlots(lambda: self.settings.workflow_max_concurrent)
        self._cache: ResultCache | None = None
        self._cancel_poll: EngineFuture[None] | None = None
        mark_interrupted_runs(store())

    @property
    def store(self) -> Store:
        return self._store()

    @property
    def settings(self) -> Settings:
        return self._settings()

    # Discovery.

    def discovery(self, *, refresh: bool = False) -> Discovery:
        if self._discovery is None or refresh:
            self._discovery = discover(default_sources(self.settings.project))
        return self._discovery

    def list(self, *, refresh: bool = False) -> list[WorkflowInfo]:
        """Every workflow found (project, user, built-in), by name, with its arguments."""
        return workflow_infos(self.discovery(refresh=refresh).workflows)

    def check_args(self, workflow: str, args: dict[str, Any] | None) -> ArgsCheck:
        """Check arguments as :meth:`run` would, running nothing: every problem, per argument.

        An unknown workflow raises :class:`UnknownWorkflow` (there is no form to show).
        """
        return check_args(self.get(workflow), args)

    def get(self, name: str) -> WorkflowSpec:
        return find_workflow(self.discovery().workflows, name)

    # Runs.

    def run(
        self,
        workflow: str | WorkflowSpec,
        args: dict[str, Any] | None = None,
        *,
        budget: int | None = None,
        timeout: float | None = None,
    ) -> uuid.UUID:
        """Start a discovered workflow; returns its run id at once (it may wait as pending).

        Arguments that do not match the declaration raise :class:`WorkflowArgsError` (its
        ``problems`` per argument) and nothing runs.
        """
        check_budget(budget)
        spec = self.get(workflow) if isinstance(workflow, str) else workflow
        values = spec.validate_args(args)
        limit = timeout or spec.timeout or self.settings.workflow_timeout_s
        return self._submit(spec.name, spec.code, values, budget=budget, timeout=limit, entry="run")

    def run_script(
        self,
        source: str,
        args: dict[str, Any] | None = None,
        *,
        budget: int | None = None,
        timeout: float | None = None,
    ) -> uuid.UUID:
        """Start a script written in a cell (it runs top to bottom; ``result`` is its result)."""
        check_budget(budget)
        limit = timeout or self.settings.workflow_timeout_s
        return self._submit(
            CELL, source, dict(args or {}), budget=budget, timeout=limit, entry="script"
        )

    def rerun(
        self, run_id: uuid.UUID | str, *, budget: int | None = None, timeout: float | None = None
    ) -> uuid.UUID:
        """Start an ended run's workflow again with the same arguments; returns the new run id.

        Agents whose results are cached (same prompt, input, model and tools) are answered
        from the cache, so their steps read ``cached``. A run of another kernel can be run
        again when it ran a discovered workflow (a cell's script is only in its kernel).
        The budget is the first run's unless ``budget`` is given.
        """
        check_budget(budget)
        key = run_uuid(run_id)
        run = self._runs.get(key)
        if run is not None:
            if run.status.state in ("pending", "running"):
                raise WorkflowError(
                    f"run {key} has not ended; cancel it (%workflow cancel {key}) or wait, "
                    "then run it again"
                )
            limit = budget or run.status.budget
            new = (
                self.run_script(run.source, run.args, budget=limit, timeout=timeout or run.timeout)
                if run.entry == "script"
                else self.run(run.status.workflow, run.args, budget=limit, timeout=timeout)
            )
            return new
        stored = self._run_store().summary(key)
        if stored is None:
            raise UnknownRun(_not_stored(key))
        if stored.state in ("pending", "running"):
            raise WorkflowError(
                f"run {key} is still {stored.state} in another kernel; wait for it to end"
            )
        if stored.workflow == CELL:
            raise WorkflowError(
                f"run {key} ran a cell's script, which only its own kernel kept; "
                "run that cell again"
            )
        limit = budget or stored.budget
        return self.run(stored.workflow, stored.args, budget=limit, timeout=timeout)

    def cancel(self, run_id: uuid.UUID | str) -> bool:
        """Stop a run: the sandbox worker is killed, its agents cancelled, the run marked so.

        Its open traces close with outcome ``cancelled``. False when it had already ended.
        """
        run = self._run(run_id)
        if run.future is None or run.future.done():
            return False
        if not run.future.cancel():
            return False
        # A run cancelled before the engine started it never reaches _execute's handler.
        self.engine.loop.call_soon_threadsafe(self._cancelled_while_pending, run)
        return True

    def _cancelled_while_pending(self, run: LiveRun) -> None:
        if run.status.state == "pending":  # else _execute's handler has recorded it
            self._runs.update(run, state="cancelled", error="cancelled")
            self.bus.publish(status_frame(run.status, None))

    def status(self, run_id: uuid.UUID | str) -> RunStatus:
        """Where a run stands: this kernel's from memory, any other from the store."""
        run_id = run_uuid(run_id)
        run = self._runs.get(run_id)
        if run is not None:
            status = run.status  # the engine replaces it as the run goes: read it once
            if run.host is not None and status.state == "running":
                # A copy, never stored: writing it back could undo the engine's final status.
                return status.model_copy(update=progress(run.host))
            return status
        detail = self._stored_detail(run_id)
        return RunStatus(run_id=run_id, result=detail.result, **status_fields(detail.status))

    def detail(self, run_id: uuid.UUID | str) -> RunDetail:
        """A run's pane: status, steps, log lines and result, from memory or the store.

        This kernel's runs come from memory (``live`` True), any other run (another
        kernel's, or one from before a restart) from the store. :class:`UnknownRun` if
        neither knows it.
        """
        key = run_uuid(run_id)
        run = self._runs.get(key)
        if run is None or run.released:
            return self._stored_detail(key)
        status = self.status(key)
        host = run.host
        logs = host.logs if host is not None else []
        return RunDetail(
            status=status_frame(status, host),
            args=run.args,
            result=status.result,
            steps=list(host.steps.values()) if host is not None else [],
            logs=logs[-MAX_LOG_LINES:],
            logs_total=len(logs),
            created_at=run.created_at,
            session_id=self.session_id,
            live=True,
        )

    def runs(
        self,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_RUNS_LIMIT,
        state: WorkflowState | None = None,
        search: str | None = None,
    ) -> RunPage:
        """A page of the project's runs (all kernels), newest first.

        Bad cursors, limits and states raise the store's ``InvalidQuery`` errors.
        """
        self.store.writer.flush()
        return self._run_store().page(cursor, limit, state=state, search=search)

    def report(self, run_id: uuid.UUID | str) -> RunReport:
        """A run's readable summary (what ``%workflow status RUN`` prints and returns)."""
        return RunReport(self.detail(run_id))

    def wait(self, run_id: uuid.UUID | str, timeout: float | None = None) -> RunStatus:
        run = self._run(run_id)
        assert run.future is not None
        try:
            return run.future.result(timeout)
        except concurrent.futures.CancelledError:
            return run.status

    def future(self, run_id: uuid.UUID | str) -> EngineFuture[RunStatus]:
        run = self._run(run_id)
        assert run.future is not None
        return run.future

    def settings_changed(self) -> None:
        """The settings changed (from any thread): a larger run limit starts waiting runs."""
        if self.engine.running:  # else no run waits
            self.engine.call_soon(self._slots.limit_changed)

    async def aclose(self) -> None:
        if self._cancel_poll is not None:
            self._cancel_poll.cancel()
        if self._pool is not None:
            await self._pool.aclose()

    # Internals.

    def _submit(
        self,
        name: str,
        source: str,
        args: dict[str, Any],
        *,
        budget: int | None,
        timeout: float,
        entry: Entry,
    ) -> uuid.UUID:
        run_id = uuid.uuid4()
        limit = budget or self.settings.workflow_default_budget
        run = LiveRun(
            RunStatus(run_id=run_id, workflow=name, state="pending", budget=limit),
            source,
            args,
            timeout,
            entry,
        )
        self._runs.add(run)
        self.bus.publish(status_frame(run.status, None))  # a view shows it waiting at once
        run.future = self.engine.submit(self._execute(run))
        if self._cancel_poll is None:
            self._cancel_poll = self.engine.submit(
                poll_cancels(
                    self._runs, store=self._store, settings=self._settings, cancel=self.cancel
                )
            )
        return run_id

    async def _execute(self, run: LiveRun) -> RunStatus:
        if self._pool is None:
            self._pool = SandboxPool(size=min(2, self.settings.workflow_max_concurrent))
            self._cache = ResultCache(self.store, size=self.settings.workflow_cache_size)
        host: WorkflowRun | None = None
        try:
            async with self._slots.slot():  # FIFO: pending runs start in the order they came
                choice = self.agents.provider()
                host = WorkflowRun(
                    run.status.run_id,
                    run.status.workflow,
                    bus=self.bus,
                    executor=self._executor,
                    tools=self.agents.tools,
                    budget=run.status.budget or 0,
                    cache=self._cache,
                    default_model=choice.model,
                    session_id=self.session_id,
                )
                run.host = host
                self._runs.update(run, state="running", host=host)
                self.bus.publish(host.status_frame("running"))
                result = await self._pool.run(
                    run.source,
                    args=run.args,
                    timeout=run.timeout,
                    handler=lambda call: serve_call(host, call),
                    entry=run.entry,
                )
            self._finish(run, host, result)
        except asyncio.CancelledError:
            if host is not None:
                host.log("cancelled", level="error")
                frame = host.status_frame("cancelled", "cancelled")
                self._runs.update(run, state="cancelled", error="cancelled", host=host)
                self.bus.publish(frame)
                host.record_end("cancelled", "cancelled")
                host.close()
                self._runs.release_old(KEPT_RUNS)
            else:
                self._cancelled_while_pending(run)
            raise
        return run.status

    def _finish(self, run: LiveRun, host: WorkflowRun, result: SandboxResult) -> None:
        state: WorkflowState = "completed" if result.status == "completed" else "failed"
        if result.status == "cancelled":
            state = "cancelled"
        error = result.error or result.violation
        if error:
            host.log(f"{state}: {error}", level="error")
        frame = host.status_frame(state, error)  # first: it marks the run finished
        self._runs.update(
            run,
            state=state,
            result=result.result,
            error=error,
            violation=result.violation,
            host=host,
        )
        self.bus.publish(frame)
        host.record_end(state, error)
        host.close()
        self._runs.release_old(KEPT_RUNS)

    def _run(self, run_id: uuid.UUID | str) -> LiveRun:
        run = self._runs.get(run_uuid(run_id))
        if run is None:
            raise UnknownRun(
                f"no workflow run {run_id} in this kernel; a run of another kernel can only "
                "be read (%workflow status RUN); copy the id %workflow run printed"
            )
        return run

    def _run_store(self) -> WorkflowRunStore:
        return WorkflowRunStore(self.store.db)

    def _stored_detail(self, run_id: uuid.UUID) -> RunDetail:
        store = self.store
        store.writer.flush()
        found = WorkflowRunStore(store.db).detail(run_id)
        if found is None:
            raise UnknownRun(_not_stored(run_id))
        return found


def _not_stored(run_id: uuid.UUID) -> str:
    return (
        f"no workflow run {run_id} is stored in this project; copy the id that "
        "%workflow run printed (the orchestrator's runs list shows every run)"
    )


def mark_interrupted_runs(store: Store) -> int:
    """Runs a dead kernel of this host left pending or running read as ``interrupted``."""
    runs = WorkflowRunStore(store.db)
    dead = [
        run_id for run_id, pid in runs.open_runs() if pid != os.getpid() and not process_alive(pid)
    ]
    runs.mark_interrupted(dead)
    return len(dead)


def check_budget(budget: int | None) -> None:
    """Refuse a token budget no run can have: above ``MAX_BUDGET``, or below one."""
    if budget is not None and not 1 <= budget <= MAX_BUDGET:
        raise WorkflowError(
            f"budget {budget:,} is not a token budget a run can have; give a number of "
            f"tokens from 1 to {MAX_BUDGET:,} (or none, for the default)"
        )


def run_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """A run id as given (a UUID or its text); anything else is an ``UnknownRun`` saying why."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise UnknownRun(
            f"{value!r} is not a run id; a run id is the UUID %workflow run printed"
        ) from None
