"""The public functions behind the magics: run agents, look up traces, register tools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import tempfile
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from boonb.agent.images import check_vision
from boonb.agent.loop import DEFAULT_SYSTEM_PROMPT, Agent, AgentResult, tool_outcome
from boonb.agent.recorder import TraceParent
from boonb.agent.sessions import RESTART_NOTE, list_sessions
from boonb.agent.tools.definition import Tool
from boonb.agent.tools.definition import tool as make_tool
from boonb.attachments import (
    SWEEP_AGE_S,
    AttachmentRef,
    AttachmentStore,
    ImageSource,
    add_image,
    default_upload_dir,
)
from boonb.background import TaskFailed, TaskNotReady, TaskResult, Tasks
from boonb.executors import ExecutorStatus
from boonb.export import (
    ExportNotConfigured,
    ExportSummary,
    InvalidExportScope,
    backfill,
    export_off_reason,
    export_target,
    open_sender,
)
from boonb.frames import TaskUpdate
from boonb.runtime import Runtime, get_runtime
from boonb.store import InvalidChatId, InvalidQuery, Writer
from boonb.store.agent_sessions import (
    SavedChat,
    chat_parent,
    finished_tool_calls,
    resolve_chat,
)
from boonb.store.agent_sessions import load_snapshot as load_chat_snapshot
from boonb.store.traces import parse_uuid

T = TypeVar("T")
log = logging.getLogger("boonb.attachments")


class AgentHandle:
    """A run going on in the background (``--no-wait``): poll, wait for, or cancel it.

    Its result is there once the run's rows are committed to the project database.
    """

    def __init__(self, agent: Agent, future: concurrent.futures.Future[AgentResult]) -> None:
        self.agent = agent
        self.future = future

    @property
    def chat_id(self) -> uuid.UUID:
        return self.agent.chat_id

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> bool:
        """Cancel the run; its open traces close with outcome ``cancelled``."""
        return self.future.cancel()

    def result(self, timeout: float | None = None) -> AgentResult:
        return self.future.result(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and its rows are stored; True if it has."""
        concurrent.futures.wait([self.future], timeout)
        return self.future.done()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<AgentHandle chat={self.chat_id} {state}>"


class TaskHandle:
    """A background subagent started with :func:`spawn`.

    Look at it, wait for it, collect its result, cancel or retry it. The task itself lives
    in the project database, so ``%tasks`` and other kernels see it too.
    """

    def __init__(self, task_id: uuid.UUID, tasks: Tasks) -> None:
        self.task_id = task_id
        self._tasks = tasks

    def status(self) -> TaskUpdate:
        """The task as it is now: state, progress, timings, error."""
        return self._tasks.get(self.task_id)

    def wait(self, timeout: float | None = None) -> TaskUpdate:
        """Block until the task has ended (or ``timeout`` seconds passed); the task then."""
        return self._tasks.wait(self.task_id, timeout)

    def result(self) -> TaskResult:
        """The subagent's answer and summary, once completed (this marks the task read).

        Raises :class:`TaskNotReady` while it is pending or running (``wait()`` first),
        and :class:`TaskFailed` when it ended without one.
        """
        outcome = self._tasks.result(self.task_id)
        task = outcome.task
        if outcome.result is not None:
            return outcome.result
        if task.state in ("pending", "running"):
            raise TaskNotReady(
                f"task {self.task_id} is {task.state}; it has no result yet. Call .wait() "
                "to block until it ends, or look at .status()"
            )
        raise TaskFailed(
            f"task {self.task_id} ended {task.state} without a result"
            + (f" ({task.error})" if task.error else "")
            + "; .retry() runs it again"
        )

    def cancel(self) -> TaskUpdate:
        """Stop the task (pending or running); its open traces close as cancelled."""
        return self._tasks.cancel(self.task_id)

    def retry(self) -> TaskHandle:
        """Run a failed, cancelled or interrupted task again, as a new attempt."""
        return TaskHandle(self._tasks.retry(self.task_id).task_id, self._tasks)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_id} {self.status().state}>"


def spawn(
    prompt: str,
    *,
    images: Sequence[ImageSource] | Mapping[str, ImageSource] = (),
    model: str | None = None,
    tools: Sequence[str] | None = None,
    budget: int | None = None,
    max_turns: int = 10,
    metadata: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> TaskHandle:
    """Start a subagent in the background and return at once with its :class:`TaskHandle`.

    It runs on this kernel's engine (at most ``BACKGROUND_MAX_CONCURRENT`` at once, the
    rest wait in order) while cells go on. ``tools`` names registered tools (default:
    all but the subagent tools); ``metadata["name"]`` is its title in ``%tasks``.
    ``images`` are stored first (as for :func:`start`) and the task keeps their references;
    a model that cannot see refuses them before any is stored.
    """
    runtime = runtime or get_runtime()
    refs: list[AttachmentRef] = []
    if images:
        choice = runtime.provider()
        check_vision(choice.profile, model or choice.model, new=len(images))
        refs = add_images(images, runtime=runtime)
    update = runtime.tasks.spawn(
        prompt,
        images=refs,
        model=model,
        tools=tools,
        budget=budget,
        max_turns=max_turns,
        metadata=metadata,
    )
    tasks = runtime.tasks
    return TaskHandle(update.task_id, tasks)


def new_agent(
    *,
    model: str | None = None,
    tools: Sequence[str | Tool] | None = None,
    budget: int | None = None,
    max_turns: int = 10,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    user_ns: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
    workflow_run_id: uuid.UUID | None = None,
    parent: TraceParent | None = None,
    runtime: Runtime | None = None,
) -> Agent:
    """An agent on the configured provider, recording into the project database.

    ``tools`` names registered tools (or passes Tool objects); None means all
    registered tools, an empty list none. Started from a tool, the chat hangs under
    that tool call in the trace tree (or under ``parent``, when given).
    """
    return (runtime or get_runtime()).agent_factory.new_agent(
        model=model,
        tools=tools,
        budget=budget,
        max_turns=max_turns,
        system_prompt=system_prompt,
        user_ns=user_ns,
        agent_id=agent_id,
        workflow_run_id=workflow_run_id,
        parent=parent,
    )


def sessions(*, include_children: bool = False) -> list[SavedChat]:
    """Chats of this project that can be resumed, newest first.

    Agents that workflows ran are left out unless ``include_children``.
    """
    return list_sessions(get_runtime().store, include_children=include_children)


def restore(chat_id: uuid.UUID | str | None = None) -> Agent:
    """Rehydrate a saved chat in this kernel (default: the newest one of the user's).

    ``chat_id`` is the chat's id, as the chat view, ``%traces`` and ``%agent sessions``
    show it, or a unique prefix of it. The agent gets its history, pending tool calls and
    settings back, on the provider this kernel is configured for.
    """
    runtime = get_runtime()
    store = runtime.store
    store.writer.flush()
    if chat_id is None:
        found = list_sessions(store)
        if not found:
            raise SessionNotFound("there is no saved chat to resume in this project")
        chat = found[0].chat_id
    else:
        chat = resolve_chat(store.db, chat_id)
    live = runtime.chats.get(chat)
    if live is not None:
        return live  # already live in this kernel
    saved = load_chat_snapshot(store.db, chat)
    if saved is None:
        raise SessionNotFound(f"no saved chat {chat}; see %agent sessions")
    session_id, snap = saved
    hung = chat_parent(store.db, chat)
    return runtime.agent_factory.restore(
        chat,
        snap,
        agent_session_id=session_id,
        user_ns=_user_ns(),
        parent=TraceParent(*hung) if hung is not None else None,
    )


def resume(chat_id: uuid.UUID | str | None = None, *, wait: bool = True) -> Any:
    """Restore a chat and carry on: replay its unfinished tool calls, then run to an answer.

    A chat that was waiting for input is restored and told about the restart; send it
    the next prompt with ``%%agent --chat ID``.
    """
    agent = restore(chat_id)
    coro = carry_on(agent)
    if coro is None:
        return agent
    return start_run(agent, coro, wait=wait)


def carry_on(agent: Agent) -> Coroutine[Any, Any, AgentResult] | None:
    """What a restored agent does next: the rest of an interrupted run, or nothing.

    Nothing when it awaits input; it is told about the restart either way. Tool calls
    that finished before the kernel died are not run again: their stored results are
    what the model reads.
    """
    pending = agent.pending_tool_calls()
    if agent.state in ("in_progress", "interrupted") or pending:
        store = get_runtime().store
        stored = finished_tool_calls(store.db, agent.chat_id, [call.id for call in pending])
        finished = {c.call_id: tool_outcome(c.output, c.error) for c in stored.values()}
        return agent.resume(note=RESTART_NOTE, finished=finished)
    agent.note_restart(RESTART_NOTE)
    return None


class SessionNotFound(InvalidQuery):
    """No saved chat has that id."""


def _user_ns() -> Mapping[str, Any] | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns if shell is not None else None


def find_chat(chat_id: uuid.UUID | str, *, runtime: Runtime | None = None) -> Agent:
    """An agent of this kernel by its chat id, to send it a follow-up."""
    runtime = runtime or get_runtime()
    chat = parse_uuid(chat_id, InvalidChatId, "chat id")
    try:
        return runtime.chats[chat]
    except KeyError:
        raise InvalidChatId(
            f"no chat {chat} in this kernel; start one with %%agent, or list past "
            "sessions with %agent sessions"
        ) from None


def start(
    agent: Agent,
    prompt: str | list[dict[str, Any]],
    *,
    images: Sequence[ImageSource] = (),
    wait: bool = True,
) -> Any:
    """Run ``prompt`` on the engine: wait for the result, or return an :class:`AgentHandle`.

    ``images`` are attached to the prompt: paths, bytes, PIL images, matplotlib figures or
    objects with ``_repr_png_`` (see :func:`add_images`). A bad image, or any image for a
    model that cannot see, raises before anything is sent or added to the chat.
    """
    refs = add_images(images, agent=agent)
    return start_run(agent, agent.run(prompt, images=refs), wait=wait)


def add_images(
    images: Sequence[ImageSource] | Mapping[str, ImageSource],
    *,
    agent: Agent | None = None,
    runtime: Runtime | None = None,
) -> list[AttachmentRef]:
    """Store images in the project's attachments; a mapping gives each its display name.

    With ``agent``, a model that cannot see refuses them before any is stored
    (:class:`~boonb.providers.CapabilityError`). All are checked before any is stored: a
    bad one raises an :class:`~boonb.errors.AttachmentError` naming it, and none is kept.
    """
    named = list(images.items() if isinstance(images, Mapping) else ((None, i) for i in images))
    if agent is not None:
        check_vision(agent.client.profile, agent.model, new=len(named))
    with attachments(runtime).all_or_nothing() as batch:
        return [add_image(batch, image, name=name) for name, image in named]


_attachment_stores: weakref.WeakKeyDictionary[Runtime, AttachmentStore] = (
    weakref.WeakKeyDictionary()
)


def attachments(runtime: Runtime | None = None) -> AttachmentStore:
    """The kernel's attachment store for the current project and settings.

    The first call sweeps staged uploads older than ``SWEEP_AGE_S`` (a crash's leftovers)
    and starts the sweep on the engine, every ``SWEEP_AGE_S / 2`` seconds.
    """
    runtime = runtime or get_runtime()
    settings = runtime.settings
    store = _attachment_stores.get(runtime)
    wanted = (
        Path(settings.project) / ".boonb" / "attachments",
        settings.upload_dir or default_upload_dir(),
        settings.max_attachment_size_mb,
    )
    if store is None or (store.folder, store.upload_dir, store.max_size_mb) != wanted:
        first = store is None
        store = AttachmentStore(
            settings.project,
            upload_dir=settings.upload_dir,
            max_size_mb=settings.max_attachment_size_mb,
        )
        _attachment_stores[runtime] = store
        if first:  # leftovers of an earlier kernel go now, later ones on the engine's timer
            sweep_uploads(store)
            runtime.engine.submit(_sweep_forever(runtime))
    return store


def sweep_uploads(store: AttachmentStore) -> None:
    """Sweep staged leftovers; a failure is logged, never raised (the next sweep retries)."""
    try:
        store.sweep()
    except OSError as exc:  # a leftover we may not remove, a folder we may not read
        log.warning("boonb: could not sweep the staged uploads in %s: %s", store.upload_dir, exc)


async def _sweep_forever(runtime: Runtime) -> None:
    """Remove staged uploads a crash left behind, for as long as the engine runs."""
    while True:
        await asyncio.sleep(SWEEP_AGE_S / 2)
        store = _attachment_stores.get(runtime)
        if store is not None:
            try:
                await asyncio.to_thread(sweep_uploads, store)
            except Exception:  # never let the sweep die silently: say so, and go on
                log.exception("boonb: sweeping the staged uploads failed")


def start_run(agent: Agent, run: Coroutine[Any, Any, AgentResult], *, wait: bool) -> Any:
    """Run a coroutine of ``agent`` on the engine, ending once its rows are stored."""
    runtime = get_runtime()
    coro = stored(run, runtime)
    if wait:
        return runtime.engine.run(coro)
    return AgentHandle(agent, runtime.engine.submit(coro))


async def stored(run: Awaitable[T], runtime: Runtime | None = None) -> T:
    """Await ``run``, then wait until everything it recorded is committed.

    This is where a cell ends: the agent's own calls never wait on the disk, but a cell
    that has returned has its traces, messages and session on disk, so a kernel killed
    a moment later loses nothing. A store that cannot write (disk full, locked for
    longer than the lock timeout) is not waited on: the rows stay queued, and the user
    has been told why.
    """
    try:
        return await run
    finally:
        runtime = runtime or get_runtime()
        # Past the lock timeout the writer has given up on this attempt and says so.
        await committed(runtime.store.writer, timeout=runtime.settings.lock_timeout_s + 5)


def wait_stored(runtime: Runtime | None = None) -> bool:
    """Block until everything recorded so far is committed; False if the store cannot.

    For the end of a cell that ran something outside :func:`stored` (a workflow run).
    """
    runtime = runtime or get_runtime()
    return runtime.store.writer.flush(timeout=runtime.settings.lock_timeout_s + 5)


async def committed(writer: Writer, *, timeout: float) -> bool:
    """Wait, holding no thread, until what ``writer`` was given so far is committed.

    False at once while the disk refuses writes, and after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def settle(committed: bool) -> None:
        if not done.done():
            done.set_result(committed)

    def answered(committed: bool) -> None:
        loop.call_soon_threadsafe(settle, committed)

    writer.when_written(answered, outlive_stall=False)
    try:
        return await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return False


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Make a function a tool every agent of this kernel can use (``@boonb.tool``).

    Defining a tool of the same name again (re-running a cell) replaces it.
    """

    def register(function: Callable[..., Any]) -> Tool:
        made = make_tool(name=name, description=description)(function)
        get_runtime().tools.register(made, replace=True)
        return made

    return register(fn) if fn is not None else register


def cache_breaks(chat_id: uuid.UUID | str | None = None) -> list[str]:
    """Why a chat's prompt cache missed: "cache broken by: tools changed at turn 7", ..."""
    runtime = get_runtime()
    chosen = chat_id if chat_id is not None else runtime.last_chat_id
    if chosen is None:
        raise InvalidChatId("no chat has run in this kernel yet; pass a chat id")
    runtime.store.writer.flush()
    return [b.message for b in runtime.store.traces.cache_breaks(chosen)]


def traces(chat_id: uuid.UUID | str | None = None) -> duckdb.DuckDBPyRelation:
    """The traces of one chat (default: the last one) as a DuckDB relation for SQL.

    The rows are copied out of the project database, so the file is not held while
    you work with the relation. Pass ``chat_id="all"`` for every trace of the project.
    """
    runtime = get_runtime()
    store = runtime.store
    store.writer.flush()
    where, params = "", []
    if chat_id != "all":
        chosen = chat_id if chat_id is not None else runtime.last_chat_id
        if chosen is None:
            raise InvalidChatId("no chat has run in this kernel yet; pass a chat id or 'all'")
        where, params = "WHERE chat_id = ?", [parse_uuid(chosen, InvalidChatId, "chat id")]
    local = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "traces.parquet"
        with store.db.connection() as con:
            con.execute(
                f"COPY (SELECT * FROM tool_traces {where} ORDER BY turn_number, started_at, id) "
                f"TO '{snapshot}' (FORMAT parquet)",
                params,
            )
        local.execute(f"CREATE TABLE traces AS SELECT * FROM read_parquet('{snapshot}')")
    return local.table("traces")


def use_dask(client: Any, *, runtime: Runtime | None = None) -> ExecutorStatus:
    """Run background subagents and workflow agents on the Dask cluster of ``client``.

    ``client`` is a ``distributed.Client`` you made (``Client(cluster)``,
    ``Client("tls://scheduler:8786", security=...)``); boonb takes its scheduler address
    and security settings and connects a client of its own, so yours stays yours (boonb
    never closes it). Returns once connected, with the workers it found. Until the
    ``executor`` or ``dask_address`` setting changes, agents run there;
    ``%boonb config executor=local`` brings them back to this kernel.
    """
    runtime = runtime or get_runtime()
    from boonb.executors.dask import DaskExecutor  # only a kernel that asks loads distributed

    executor = DaskExecutor.connect(runtime.agent_factory, engine=runtime.engine, client=client)
    try:
        executor.wait_ready()
    except BaseException:
        runtime.engine.submit(executor.aclose())
        raise
    runtime.use_executor(executor)
    return executor.describe()


def export_otel(what: uuid.UUID | str, *, runtime: Runtime | None = None) -> ExportSummary:
    """Send stored traces to the configured OpenTelemetry endpoint, as the live export does.

    ``what`` is a chat id (the chat, and the chats its tool calls started), a workflow run
    id, or ``"all"`` (every trace of the project). The spans are those the live export
    sends for the same rows: same ids, names, attributes and original timestamps, so a
    backend that already has some sees the same spans again, not new ones. Returns how
    many spans were sent and how many the endpoint did not accept.
    """
    runtime = runtime or get_runtime()
    target = export_target(runtime.settings)
    off = export_off_reason(runtime.settings)
    if target is None and off is not None:
        raise ExportNotConfigured(
            f"{off} switches OpenTelemetry export off, so nothing is sent; unset it "
            "(or %boonb config otel_sdk_disabled=false otel_traces_exporter=otlp), then call "
            "export_otel again"
        )
    if target is None:
        raise ExportNotConfigured(
            "no OpenTelemetry endpoint is set, so there is nowhere to send traces; set "
            "OTEL_EXPORTER_OTLP_ENDPOINT or run %boonb config otel_endpoint=http://localhost:4318 "
            "(Phoenix, Langfuse, a collector), then call export_otel again"
        )
    if not isinstance(what, uuid.UUID | str):
        raise InvalidExportScope(
            f"export_otel takes a chat id, a workflow run id or 'all', got {what!r}"
        )
    runtime.store.writer.flush()
    sender = open_sender(target)
    try:
        return backfill(runtime.store.db, what, target, sender)
    finally:
        sender.shutdown()
