"""The workflow manager: list, run, cancel and follow workflow runs of this kernel.

Runs execute in the sandbox pool on the engine's loop, at most
``WORKFLOW_MAX_CONCURRENT`` at once; the rest wait as ``pending`` in the order they
came. Every run is recorded in ``workflow_runs``; a run a dead kernel left running
reads as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, JsonValue

from boonb.agent.factory import AgentFactory
from boonb.agent.sessions import process_alive
from boonb.bus import Bus
from boonb.config import Settings
from boonb.engine import Engine, EngineFuture
from boonb.errors import WorkflowError
from boonb.frames import WorkflowState
from boonb.store import Store, make_row
from boonb.workflow.cache import ResultCache
from boonb.workflow.calls import serve_call
from boonb.workflow.discovery import Discovery, WorkflowSpec, default_sources, discover
from boonb.workflow.runner import WorkflowRun
from boonb.workflow.sandbox import SandboxPool, SandboxResult

CELL = "<cell>"
Entry = Literal["script", "run"]


class UnknownWorkflow(WorkflowError, LookupError):
    """No discovered workflow has that name."""


class UnknownRun(WorkflowError, LookupError):
    """No workflow run has that id."""


class WorkflowInfo(BaseModel):
    """One discovered workflow as ``%workflow list`` and the views show it."""

    name: str
    description: str
    args_schema: dict[str, Any]
    source: str
    path: str


class RunStatus(BaseModel):
    """Where a run stands; ``result`` once it completed."""

    run_id: uuid.UUID
    workflow: str
    state: WorkflowState
    phase: str | None = None
    agents_done: int = 0
    agents_total: int = 0
    agents_run: int = 0
    tokens_used: int = 0
    budget: int | None = None
    result: JsonValue = None
    error: str | None = None
    violation: str | None = None


@dataclass
class _Run:
    status: RunStatus
    source: str
    args: dict[str, Any]
    timeout: float
    entry: Entry
    host: WorkflowRun | None = None
    future: EngineFuture[RunStatus] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class WorkflowManager:
    """Discovers workflows, starts runs in the sandbox, and tracks, cancels and records them.

    ``run(name, args)`` and ``run_script(source, args)`` start a run on the engine and
    return its id at once; ``status``, ``wait``, ``future`` and ``cancel`` follow it.
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
    ) -> None:
        """Built from the parts a run uses, so a test can build one without a runtime.

        ``store`` and ``settings`` are read at each use: the user can point the kernel at
        another database or change limits at run time (``%boonb config``). ``agents``
        builds every agent a run starts; ``session_id`` tags the runs of this kernel.
        """
        self.engine = engine
        self.bus = bus
        self._store = store
        self._settings = settings
        self.agents = agents
        self.session_id = session_id
        self._discovery: Discovery | None = None
        self._runs: dict[uuid.UUID, _Run] = {}
        self._pool: SandboxPool | None = None
        self._slots: asyncio.Semaphore | None = None
        self._cache: ResultCache | None = None
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
        return [
            WorkflowInfo(
                name=spec.name,
                description=spec.description,
                args_schema=spec.args_schema(),
                source=spec.source,
                path=str(spec.path),
            )
            for spec in sorted(
                self.discovery(refresh=refresh).workflows.values(), key=lambda s: s.name
            )
        ]

    def get(self, name: str) -> WorkflowSpec:
        workflows = self.discovery().workflows
        if name not in workflows:
            known = ", ".join(sorted(workflows)) or "none"
            raise UnknownWorkflow(
                f"no workflow named {name!r}; known: {known} (%workflow list --refresh rescans)"
            )
        return workflows[name]

    # Runs.

    def run(
        self,
        workflow: str | WorkflowSpec,
        args: dict[str, Any] | None = None,
        *,
        budget: int | None = None,
        timeout: float | None = None,
    ) -> uuid.UUID:
        """Start a discovered workflow; returns its run id at once (it may wait as pending)."""
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
        limit = timeout or self.settings.workflow_timeout_s
        return self._submit(
            CELL, source, dict(args or {}), budget=budget, timeout=limit, entry="script"
        )

    def cancel(self, run_id: uuid.UUID | str) -> bool:
        """Stop a run: the sandbox worker is killed, its agents cancelled, the run marked so."""
        run = self._run(run_id)
        if run.future is None or run.future.done():
            return False
        return run.future.cancel()

    def status(self, run_id: uuid.UUID | str) -> RunStatus:
        run_id = _uuid(run_id)
        run = self._runs.get(run_id)
        if run is not None:
            if run.host is not None and run.status.state == "running":
                host = run.host
                run.status = run.status.model_copy(
                    update={
                        "phase": host.phase,
                        "agents_done": host.agents_done,
                        "agents_total": host.agents_total,
                        "agents_run": host.agents_run,
                        "tokens_used": host.tokens_used,
                    }
                )
            return run.status
        return self._stored_status(run_id)

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

    async def aclose(self) -> None:
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
        run = _Run(
            RunStatus(run_id=run_id, workflow=name, state="pending", budget=limit),
            source,
            args,
            timeout,
            entry,
        )
        self._runs[run_id] = run
        self._record(run)
        run.future = self.engine.submit(self._execute(run))
        return run_id

    async def _execute(self, run: _Run) -> RunStatus:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.workflow_max_concurrent)
            self._pool = SandboxPool(size=min(2, self.settings.workflow_max_concurrent))
            self._cache = ResultCache(self.store, size=self.settings.workflow_cache_size)
        assert self._pool is not None
        host: WorkflowRun | None = None
        try:
            async with self._slots:  # FIFO: pending runs start in the order they came
                choice = self.agents.provider()
                host = WorkflowRun(
                    run.status.run_id,
                    run.status.workflow,
                    bus=self.bus,
                    new_agent=self.agents.new_agent,
                    budget=run.status.budget or 0,
                    cache=self._cache,
                    default_model=choice.model,
                    session_id=self.session_id,
                )
                run.host = host
                self._update(run, state="running")
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
            self._update(run, state="cancelled", error="cancelled", host=host)
            if host is not None:
                self.bus.publish(host.status_frame("cancelled", "cancelled"))
                host.record_end("cancelled", "cancelled")
                host.close()
            raise
        return run.status

    def _finish(self, run: _Run, host: WorkflowRun, result: SandboxResult) -> None:
        state: WorkflowState = "completed" if result.status == "completed" else "failed"
        if result.status == "cancelled":
            state = "cancelled"
        error = result.error or result.violation
        self._update(
            run,
            state=state,
            result=result.result,
            error=error,
            violation=result.violation,
            host=host,
        )
        self.bus.publish(host.status_frame(state, error))
        host.record_end(state, error)
        host.close()

    def _update(self, run: _Run, *, host: WorkflowRun | None = None, **changes: Any) -> None:
        if host is not None:
            changes.update(
                phase=host.phase,
                agents_done=host.agents_done,
                agents_total=host.agents_total,
                agents_run=host.agents_run,
                tokens_used=host.tokens_used,
            )
        run.status = run.status.model_copy(update=changes)
        self._record(run)

    def _record(self, run: _Run) -> None:
        status = run.status
        now = datetime.now(UTC)
        self.store.writer.enqueue(
            make_row(
                "workflow_runs",
                {
                    "id": status.run_id,
                    "workflow": status.workflow,
                    "source": None if status.workflow == CELL else status.workflow,
                    "args": run.args,
                    "state": status.state,
                    "result": status.result,
                    "error": status.error,
                    "tokens_used": status.tokens_used,
                    "budget": status.budget,
                    "session_id": self.session_id,
                    "kernel_pid": os.getpid(),
                    "created_at": run.created_at,
                    "started_at": now if status.state == "running" else None,
                    "finished_at": now if status.state not in ("pending", "running") else None,
                },
                json_columns=frozenset({"args", "result"}),
                action="upsert",
            )
        )

    def _run(self, run_id: uuid.UUID | str) -> _Run:
        run = self._runs.get(_uuid(run_id))
        if run is None:
            raise UnknownRun(
                f"no workflow run {run_id} in this kernel; a run of another kernel can only "
                "be read (%workflow status RUN); copy the id %workflow run printed"
            )
        return run

    def _stored_status(self, run_id: uuid.UUID) -> RunStatus:
        store = self.store
        store.writer.flush()
        with store.db.connection() as con:
            row = con.execute(
                "SELECT workflow, state, tokens_used, budget, result, error FROM workflow_runs "
                "WHERE id = ?",
                [run_id],
            ).fetchone()
        if row is None:
            raise UnknownRun(
                f"no workflow run {run_id} is stored in this project; copy the id that "
                "%workflow run printed"
            )
        workflow, state, tokens, budget, result, error = row
        return RunStatus(
            run_id=run_id,
            workflow=workflow,
            state=state,
            tokens_used=tokens,
            budget=budget,
            result=json.loads(result) if result else None,
            error=error,
        )


def mark_interrupted_runs(store: Store) -> int:
    """Runs a dead kernel of this host left pending or running read as ``interrupted``."""
    with store.db.connection() as con:
        rows = con.execute(
            "SELECT id, kernel_pid FROM workflow_runs WHERE state IN ('pending', 'running')"
        ).fetchall()
        dead = [run_id for run_id, pid in rows if pid != os.getpid() and not process_alive(pid)]
        for run_id in dead:
            con.execute("UPDATE workflow_runs SET state = 'interrupted' WHERE id = ?", [run_id])
    return len(dead)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise UnknownRun(
            f"{value!r} is not a run id; a run id is the UUID %workflow run printed"
        ) from None
