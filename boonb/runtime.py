"""The kernel's one boonb runtime: settings, bus, engine, store, provider and chats, wired together.

The store opens on first use (so importing boonb never touches the disk), records
this kernel session, and subscribes its writer to the bus. The simulator starts on
first use when no API key is configured. At interpreter exit the engine winds down
(cancelling running agents cleanly) and the writer flushes.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import sys
import threading
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from boonb import config
from boonb.agent.factory import AgentFactory
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.sessions import mark_interrupted
from boonb.agent.tools.registry import ToolRegistry, default_registry
from boonb.background import SUBAGENT_ID_PREFIX, Tasks, subagent_tools
from boonb.bus import Bus
from boonb.engine import Engine, EngineStopped
from boonb.errors import ConfigError
from boonb.executors import Executor
from boonb.executors.in_use import InUse
from boonb.executors.local import LocalExecutor
from boonb.export import (
    EXPORTED_FRAME_TYPES,
    ExportError,
    ExportTarget,
    LiveExport,
    export_target,
    open_sender,
)
from boonb.providers import Capabilities, ChatClient
from boonb.store import STORED_FRAME_TYPES, Row, Store, make_row

if TYPE_CHECKING:
    from boonb.agent.loop import Agent
    from boonb.agent.sessions import SessionSaver
    from boonb.sim import SimServer
    from boonb.workflow.manager import WorkflowManager

log = logging.getLogger("boonb")


class Runtime:
    """One kernel's boonb: its settings, bus, engine, store, tools, live chats and workflows.

    It wires the parts together and holds no logic of its own: agents are built by
    :attr:`agent_factory`, workflow runs by :attr:`workflows`, both given the parts they
    use rather than the runtime, so they can be built and tested without one.
    """

    def __init__(self, settings: config.Settings | None = None) -> None:
        self._settings_override = settings
        self.session_id = uuid.uuid4()
        self.started_at = datetime.now(UTC)
        self.bus = Bus()
        self.engine = Engine()
        self._store: Store | None = None
        self._unsubscribe_store = lambda: None
        self._lock = threading.Lock()
        self._closed = False
        self.tools: ToolRegistry = default_registry()
        self.chats: dict[uuid.UUID, Agent] = {}
        self.savers: dict[uuid.UUID, SessionSaver] = {}
        self.last_chat_id: uuid.UUID | None = None
        self._sim: SimServer | None = None
        self._clients: dict[tuple[str, str, str, str | None, Capabilities], ChatClient] = {}
        self._workflows: WorkflowManager | None = None
        self._tasks: Tasks | None = None
        self._executor: InUse | None = None
        self._executor_for: tuple[str, str | None] | None = None
        """``executor`` and ``dask_address`` when the executor was built or installed."""
        self._retired: list[InUse] = []
        """Executors replaced while agents ran on them: each closes after its last run."""
        self._export: LiveExport | None = None
        self._export_target: ExportTarget | None = None
        self._unsubscribe_export = lambda: None
        self.export_error: ExportError | ConfigError | None = None
        """Why export is off although the settings ask for it (shown by ``%boonb``)."""
        self._export_sync = threading.Lock()
        for made in subagent_tools(lambda: self.tasks):
            self.tools.register(made)
        self.agent_factory = AgentFactory(
            bus=self.bus,
            store=lambda: self.store,
            settings=lambda: self.settings,
            provider=self.provider,
            client=self.client,
            tools=self.tools,
            session_id=self.session_id,
            register=self.keep,
        )
        self._sync_export_or_tell()
        # Settings changed from Python (config.update) or %boonb config retarget the export
        # and the executor, and may let more workflow runs go at once. Weakly: the settings'
        # listeners must not keep a forgotten runtime alive.
        synced = weakref.WeakMethod(self._settings_changed)

        def settings_changed() -> None:
            sync = synced()
            if sync is not None:
                sync()

        self._stop_listening = config.on_change(settings_changed) if settings is None else _noop

    def _settings_changed(self) -> None:
        self._sync_export_or_tell()
        self._drop_stale_executor()
        if self._workflows is not None:
            self._workflows.settings_changed()

    def _sync_export_or_tell(self) -> None:
        """:meth:`sync_export`; on an error, agents run without export and the user learns why."""
        told = self.export_error
        try:
            self.sync_export()
        except (ExportError, ConfigError) as exc:
            if told is None or str(told) != str(exc):  # once, not at every settings change
                _tell_user(f"boonb: traces are not exported: {exc}")

    @property
    def settings(self) -> config.Settings:
        return self._settings_override or config.get_settings()

    @property
    def store(self) -> Store:
        """The project database, opened on first use (raises StoreError if unusable)."""
        with self._lock:
            settings = self.settings
            if self._store is None or self._store.path != _resolved(settings.database):
                self._open_store()
            assert self._store is not None
            # Settings can change at run time (%boonb config); apply the cheap ones in place.
            self._store.writer.flush_interval = settings.flush_interval_ms / 1000
            self._store.db.lock_timeout = settings.lock_timeout_s
            self._store.writer.max_pending = settings.max_pending_rows
            return self._store

    def _open_store(self) -> None:
        settings = self.settings
        store = Store(
            settings.database,
            flush_interval=settings.flush_interval_ms / 1000,
            lock_timeout=settings.lock_timeout_s,
            max_pending=settings.max_pending_rows,
            notify=_tell_user,
        )
        self._close_store()
        self._store = store
        self._unsubscribe_store = self.bus.subscribe(
            store.writer.enqueue_frame, types=STORED_FRAME_TYPES
        )
        store.writer.enqueue(self._session_row(ended_at=None))
        mark_interrupted(store)

    def _close_store(self) -> None:
        if self._store is None:
            return
        self._unsubscribe_store()
        self._store.writer.enqueue(self._session_row(ended_at=datetime.now(UTC)))
        self._store.close()
        self._store = None

    def _session_row(self, *, ended_at: datetime | None) -> Row:
        values = {
            "id": self.session_id,
            "project": str(self.settings.project),
            "kernel_pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started_at": self.started_at,
            "ended_at": ended_at,
        }
        return make_row("sessions", values, action="upsert")

    def keep(self, agent: Agent, saver: SessionSaver) -> None:
        """Make a chat live in this kernel: found by its id, and the one a bare call means."""
        self.chats[agent.chat_id] = agent
        if not (agent.recorder.agent_id or "").startswith(SUBAGENT_ID_PREFIX):
            # A background subagent starting must not take over what a bare call means.
            self.last_chat_id = agent.chat_id
        self.savers[agent.chat_id] = saver
        agent.notes = self._task_notes

    def _task_notes(self, agent: Agent) -> str | None:
        """Background tasks of the agent's that finished since its last model call."""
        tasks = self._tasks
        return tasks.notice_for(agent.chat_id) if tasks is not None else None

    @property
    def tasks(self) -> Tasks:
        """The project's background tasks, as this kernel runs and sees them.

        Created on first use; its worker starts on the engine then (it also polls the
        table for what other processes ask of this kernel's tasks).
        """
        # Built under the lock (its constructor only subscribes to the bus): a second one
        # made and closed here would wait on the engine, which may wait for this lock.
        with self._lock:
            if self._tasks is None:
                self._tasks = Tasks(
                    engine=self.engine,
                    bus=self.bus,
                    store=lambda: self.store,
                    settings=lambda: self.settings,
                    agents=self.agent_factory,
                    tools=self.tools,
                    session_id=self.session_id,
                    executor=self._executor_in_use,
                )
                self._tasks.ensure_worker()
            return self._tasks

    @property
    def workflows(self) -> WorkflowManager:
        """The workflow manager, created on first use (discovery runs then, once)."""
        if self._workflows is None:
            # Imported here: the sandbox and the catalog are only loaded by kernels that
            # run workflows.
            from boonb.workflow.manager import WorkflowManager

            manager = WorkflowManager(  # outside the lock: it opens the store
                engine=self.engine,
                bus=self.bus,
                store=lambda: self.store,
                settings=lambda: self.settings,
                agents=self.agent_factory,
                session_id=self.session_id,
                executor=self._executor_in_use,
            )
            with self._lock:
                if self._workflows is None:
                    self._workflows = manager
        return self._workflows

    @property
    def executor(self) -> Executor:
        """Where background and workflow agents run, built from the settings on first use.

        ``executor=local`` runs them here; ``executor=dask`` on the cluster at
        ``dask_address`` (connecting may raise ``ExecutorUnavailable``). A change of either
        setting drops the built one, so the next agent connects anew.
        """
        return self._executor_in_use().executor

    def _executor_in_use(self) -> InUse:
        """The executor as tasks and workflows run agents on it: counting its runs."""
        while True:
            with self._lock:
                if self._executor is not None:
                    return self._executor
                wanted = _executor_settings(self.settings)
            built = self._build_executor(wanted[0])  # outside the lock: connecting takes time
            with self._lock:
                kept = self._executor  # another thread may have built one meanwhile
                if kept is None and wanted == _executor_settings(self.settings):
                    made = self._executor = InUse(built)
                    self._executor_for = wanted
                    return made
            # Not used by anyone: another thread's is kept, or the settings changed while
            # it was built (then build for the new ones).
            self._close_executor(InUse(built))
            if kept is not None:
                return kept

    def _build_executor(self, name: str) -> Executor:
        if name == "dask":
            # Imported here: only a kernel that asks for Dask loads distributed.
            from boonb.executors.dask import DaskExecutor

            executor: Executor = DaskExecutor.connect(
                self.agent_factory, engine=self.engine, address=self.settings.dask_address
            )
            return executor
        return LocalExecutor(self.agent_factory)

    def use_executor(self, executor: Executor) -> None:
        """Run background and workflow agents on ``executor`` from now on.

        Agents already running finish on the executor they started on; the old executor
        is closed once the last of them has ended (at once if none runs). ``executor``
        stays until the next call, or until the ``executor`` or ``dask_address`` setting
        changes (``%boonb config executor=local`` goes back to this kernel), which
        replaces it the same way.
        """
        with self._lock:
            old = self._executor
            self._executor = InUse(executor)
            self._executor_for = _executor_settings(self.settings)
        if old is not None and old.executor is not executor:
            self._close_executor(old)

    def _drop_stale_executor(self) -> None:
        """After a settings change: drop a built executor they no longer ask for.

        It is closed once the agents running on it have ended.
        """
        with self._lock:
            built = self._executor
            if built is None or self._executor_for == _executor_settings(self.settings):
                return
            self._executor, self._executor_for = None, None
        self._close_executor(built)

    def _close_executor(self, executor: InUse) -> None:
        """Close ``executor`` on the engine (where its connections live) after its last run."""
        with self._lock:
            self._retired = [e for e in self._retired if not e.closed] + [executor]
        try:
            self.engine.submit(executor.retire())
        except EngineStopped:  # the engine is gone, and with it the loop its sockets were on
            pass

    def _close_executors_now(self, executors: list[InUse]) -> None:
        """At shutdown: interrupt the agents running on ``executors``, then close them.

        The callers (tasks, workflow steps) are cancelled first and record their end as
        interrupted; only then is each executor closed, so none ends with its error.
        A failure stops nothing else: the store must still be flushed and closed.
        """

        async def interrupt_then_close() -> None:
            await asyncio.gather(*(e.interrupt(SHUTDOWN_GRACE_S) for e in executors))
            # A failure is logged by close() itself; the others are closed all the same.
            await asyncio.gather(*(e.close() for e in executors), return_exceptions=True)

        try:
            self.engine.run(interrupt_then_close())
        except EngineStopped:
            pass

    @property
    def export(self) -> LiveExport | None:
        """The live OpenTelemetry export, or None when it is off (the default)."""
        return self._export

    def sync_export(self) -> LiveExport | None:
        """Start, restart or stop the OpenTelemetry export to match the settings.

        Called when the runtime starts and after every settings change. Raises
        :class:`~boonb.export.ExportError` when export is asked for but cannot start
        (the extra missing, malformed headers, gRPC); it is kept in :attr:`export_error`.
        Nothing of OpenTelemetry is imported while export is off.
        """
        # One sync at a time (two would each start an export); the runtime's lock is
        # not held while the old export finishes sending, which can take seconds.
        with self._export_sync:
            try:
                target = export_target(self.settings)
                if target == self._export_target and self._export is not None:
                    return self._export
                sender = open_sender(target) if target is not None else None
            except (ExportError, ConfigError) as exc:
                self.export_error = exc
                self._stop_export()
                raise
            self.export_error = None
            self._stop_export()
            if target is None or sender is None:
                return None
            export = LiveExport(target, sender, provider_of=self._provider_of, notify=_tell_user)
            with self._lock:
                self._unsubscribe_export = self.bus.subscribe(
                    export.on_frame, types=EXPORTED_FRAME_TYPES
                )
                self._export, self._export_target = export, target
            return export

    def _stop_export(self, timeout: float = 5.0) -> None:
        """Unsubscribe and close the export, sending what it holds for at most ``timeout``.

        Called without the runtime's lock held: closing waits for the export thread.
        """
        with self._lock:
            export, self._export, self._export_target = self._export, None, None
            unsubscribe, self._unsubscribe_export = self._unsubscribe_export, lambda: None
        if export is not None:
            unsubscribe()
            export.close(timeout)

    def _provider_of(self, chat_id: uuid.UUID) -> str | None:
        """The provider a chat runs on (for its model calls' spans): a live one, or remote."""
        agent = self.chats.get(chat_id)
        if agent is not None:
            return agent.provider_name
        executor = self._executor  # a chat on Dask workers has no agent in this kernel
        return executor.provider_of(chat_id) if executor is not None else None

    def provider(self) -> ProviderChoice:
        """The provider the settings select; starts the simulator when it is the one."""
        settings = self.settings
        choice = choose_provider(settings)
        if choice.simulated and not settings.base_url:
            choice = choose_provider(settings, sim_base_url=self.simulator().base_url)
        return choice

    def client(self, choice: ProviderChoice) -> ChatClient:
        """A chat client per provider, URL, model and key, reused so connections are pooled."""
        # The model's capabilities are in the key: `%boonb config vision=...` changes them.
        caps = choice.profile.spec(choice.model).capabilities
        key = (choice.name, choice.profile.base_url, choice.model, choice.api_key, caps)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = ChatClient(choice.profile, api_key=choice.api_key, model=choice.model)
                self._clients[key] = client
            return client

    def simulator(self) -> SimServer:
        """The in-process simulator, started on first use (it says so once, on stdout).

        The notice is information, not an error: on stderr JupyterLab would show it in a
        pink error box, so it goes to stdout, an ordinary output line.
        """
        with self._lock:
            if self._sim is None:
                from boonb.sim import SimServer

                self._sim = SimServer(latency=0.02)
                url = self._sim.start()
                print(
                    f"boonb: no API key is set, so agents use the built-in simulator at {url} "
                    "(not a real model). Set DEEPSEEK_API_KEY or OPENAI_API_KEY, or "
                    "%boonb config provider=..., to use a real one.",
                    file=sys.stdout,
                    flush=True,
                )
            return self._sim

    def shutdown(self) -> None:
        """Stop the engine (cancelling its work cleanly), then flush and release the store."""
        if self._closed:
            return
        self._closed = True
        if self._tasks is not None:
            self._tasks.close()  # no new starts; the engine's shutdown cancels what runs
        if self._workflows is not None and self.engine.running:
            self.engine.run(self._workflows.aclose())  # stop the sandbox workers first
        with self._lock:
            current, self._executor = self._executor, None
            executors = [*self._retired, *([current] if current is not None else [])]
            self._retired = []
        if executors:
            self._close_executors_now(executors)
        self.engine.shutdown()
        self._stop_listening()
        with self._export_sync:
            self._stop_export()  # after the engine: the cancelled calls' rows are sent too
        with self._lock:
            self._close_store()
            if self._sim is not None:
                self._sim.stop()


SHUTDOWN_GRACE_S = 6.0
"""At shutdown, how long the interrupted agents' callers have to record how they ended:
a little more than a Dask run's wind-down (5 s) after its cancel."""


def _executor_settings(settings: config.Settings) -> tuple[str, str | None]:
    """The settings an executor built from them follows."""
    return settings.executor, settings.dask_address


def _noop() -> None:
    pass


def _tell_user(message: str) -> None:
    """The store's news (writing stalled, recovered, rows dropped), on the cell's stderr."""
    print(message, file=sys.stderr, flush=True)


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, created on first use and shut down at exit."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
            atexit.register(_runtime.shutdown)
        return _runtime
