"""The worker's end of a remote agent: :class:`AgentHost` runs a kernel's agents where it lives.

It runs the **unchanged** ``Agent`` and ``Recorder``. What they would publish on the
kernel's bus and write to its database is sent instead, as wire items
(:mod:`boonb.executors.wire`), through ``emit``; the kernel's
:class:`~boonb.executors.replay.Replay` turns them into the same frames, rows and session
saves a local run makes. The host holds no store, no settings and no secrets beyond the
``ChatClient`` of each provider a run brings.

It knows nothing of Dask: ``boonb.executors.dask_host`` makes it an actor whose ``emit``
is ``Worker.log_event``, and tests give it the replay's ``feed`` directly. Every public
method is a coroutine whose arguments and return value pickle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from boonb.agent.loop import Agent, AgentResult
from boonb.agent.recorder import Recorder, TraceParent
from boonb.agent.sessions import snapshot
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.definition import Tool
from boonb.agent.tools.errors import ToolError, UnknownToolError
from boonb.attachments import AttachmentStore
from boonb.bus import Bus
from boonb.errors import BoonbError, ExecutorError, WorkerLost
from boonb.executors import wire
from boonb.executors.spec import AgentRunSpec, ProviderWire
from boonb.frames import Frame
from boonb.providers import ChatClient
from boonb.store import Row

log = logging.getLogger("boonb.executors.host")

Emit = Callable[[str, dict[str, Any]], None]

LEASE_S = 30.0
"""A kernel's runs are cancelled when it has not pinged for this long (it died, or lost
the cluster): nobody would read what they record."""

CANCEL_KEPT_S = 60.0
"""How long a cancel of a run not here yet is remembered: the ``run`` call may arrive
after it (actor calls travel on separate connections, a big one is slower)."""

WORKER_SESSION = uuid.UUID(int=0)
"""The session id recorded on the worker; the kernel's replay writes its own instead."""


def kernel_only_message(name: str) -> str:
    """What the model reads when it calls a kernel-only tool on a worker."""
    return (
        f"`{name}` runs only in the kernel, and this agent runs on a Dask worker: give this "
        "agent tools that can run on the worker, or run it with "
        "`%boonb config executor=local`"
    )


class KernelOnlyTool(Tool):
    """A kernel-only tool as a worker's agent sees it: same name and schema, refused.

    The prompt stays what a local run sends (so answers and caches match); a call fails
    with a ``ToolError`` the model reads, as any failed tool call does.
    """

    __slots__ = ()

    def __init__(self, original: Tool) -> None:  # not Tool's: the schema is the original's
        for name in Tool.__slots__:
            setattr(self, name, getattr(original, name))

    async def invoke(self, arguments: str | Mapping[str, Any], context: ToolContext) -> JsonValue:
        raise ToolError(kernel_only_message(self.name))


@dataclass(eq=False)
class _Outbox:
    """One run's items, numbered in order and handed to its kernel's batcher."""

    run_id: str
    batcher: wire.Batcher
    seq: int = 0

    def put(self, kind: wire.ItemKind, data: bytes) -> None:
        self.seq += 1
        self.batcher.add(wire.Item(self.run_id, self.seq, kind, data))

    def frame(self, frame: Frame) -> None:
        self.put("frame", wire.frame_data(frame))

    def boundary(self, agent: Agent, final: bool) -> None:
        """The agent's ``on_boundary``: its snapshot goes to the kernel's session saver."""
        snap = snapshot(agent, agent_session_id=WORKER_SESSION)
        self.put("snapshot", wire.json_data({"snapshot": snap, "final": final}))
        if final or agent.phase != "tools":  # between turns: the kernel sees the turn now
            self.batcher.flush()

    def end(self, outcome: wire.RunOutcome) -> None:
        self.put("end", wire.json_data({"outcome": outcome}))
        self.batcher.flush()


class _RemoteRecorder(Recorder):
    """A recorder whose chat and message rows are items: the kernel's recorder writes them."""

    def __init__(self, bus: Bus, outbox: _Outbox, **identity: Any) -> None:
        super().__init__(bus, _no_rows, **identity)
        self.outbox = outbox

    def chat_started(self, *, provider: str, model: str, title: str) -> None:
        self.outbox.put(
            "chat", wire.json_data({"provider": provider, "model": model, "title": title})
        )

    def message(self, message: dict[str, Any], *, turn_number: int) -> None:
        self.outbox.put("message", wire.json_data({"message": message, "turn_number": turn_number}))


def _no_rows(row: Row) -> None:
    raise AssertionError(f"a worker's recorder wrote a {row.table} row")  # all are items


@dataclass(eq=False)
class _Run:
    topic: str
    task: asyncio.Task[dict[str, Any]] | None = None
    expired: bool = False
    """Cancelled by the lease watchdog, not by its kernel."""


ClientKey = tuple[str, str, str, str]


@dataclass(eq=False)
class _Clients:
    """Chat clients by provider, whole profile, model and key hash: pooled connections.

    The whole profile is in the key: a client prices calls and checks vision with its
    own profile, so two kernels whose profiles differ in anything must not share one.
    """

    made: dict[ClientKey, ChatClient] = field(default_factory=dict)

    def get(self, provider: ProviderWire) -> ChatClient:
        # "" when the kernel sent no key: None would make ChatClient read this worker's
        # own OPENAI_API_KEY/... and send it to a URL the kernel chose; "" sends no key.
        key = provider.api_key.get_secret_value() if provider.api_key is not None else ""
        profile = hashlib.sha256(provider.profile.model_dump_json().encode()).hexdigest()
        digest = hashlib.sha256(key.encode()).hexdigest()
        index = (provider.name, profile, provider.model, digest)
        client = self.made.get(index)
        if client is None:
            client = ChatClient(provider.profile, api_key=key, model=provider.model)
            self.made[index] = client
        return client

    async def aclose(self) -> None:
        made, self.made = self.made, {}
        for client in made.values():
            await client.aclose()


class AgentHost:
    """Runs agents for kernels on this process's event loop (a Dask worker's, as an actor).

    ``emit(topic, batch)`` sends a batch of items to the kernel listening on ``topic``;
    a subclass may override :meth:`_emit` instead. ``attachments_dir`` is where the images
    of runs are kept (default: a temporary folder). A kernel that has not called
    :meth:`ping` (or started a run) for ``lease_s`` seconds has its runs cancelled.
    """

    def __init__(
        self,
        emit: Emit | None = None,
        *,
        attachments_dir: Path | str | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self._emit_to = emit
        self._attachments_dir = Path(attachments_dir) if attachments_dir is not None else None
        self.lease_s = lease_s
        self._tools: dict[str, dict[str, Tool]] = {}
        """Each kernel's tools (by its topic), by name: kernels share a worker, not tools."""
        self._runs: dict[str, _Run] = {}
        self._batchers: dict[str, wire.Batcher] = {}
        self._clients = _Clients()
        self._leases: dict[str, float] = {}
        self._cancelled_early: dict[str, float] = {}
        """Runs cancelled before their ``run`` call arrived, and when (see ``CANCEL_KEPT_S``)."""
        self._watchdog: asyncio.Task[None] | None = None

    async def hello(self) -> dict[str, Any]:
        """The versions this host speaks: the kernel refuses a worker that differs."""
        return {"boonb": version("boonb"), "wire": wire.WIRE_VERSION}

    async def register_tools(
        self, tools: Sequence[Tool] | Mapping[str, bytes], *, topic: str
    ) -> dict[str, str]:
        """Tools the agents of the kernel on ``topic`` may use here, by name.

        ``tools`` are Tool objects, or each tool's pickle by name (as the Dask executor
        sends them, so one that does not load here fails alone, by name). Returns why each
        tool that did not load failed, by name (empty when all loaded). A name given again
        by the same kernel replaces its tool; another kernel's tools are never seen by this
        kernel's runs.
        """
        loaded, failed = _loaded(tools) if isinstance(tools, Mapping) else (list(tools), {})
        for made in loaded:
            if not isinstance(made, Tool):
                raise TypeError(f"register_tools() takes Tool objects, got {made!r}")
        mine = self._tools.setdefault(topic, {})
        for made in loaded:
            mine[made.name] = made
        return failed

    async def run(
        self,
        spec: AgentRunSpec,
        provider: ProviderWire,
        images: list[wire.ImageBlob],
        topic: str,
        *,
        project_root: str,
    ) -> dict[str, Any]:
        """Run ``spec`` to its end; what it records goes to ``topic`` before this returns.

        Returns a :func:`wire.reply` (read it with :func:`wire.result_of`); a failure or a
        :meth:`cancel` is a reply too, never an exception. ``project_root`` is the kernel's:
        built-in file tools work in it (right for workers on the kernel's host or disk).
        """
        run_id = str(spec.chat_id)
        if self._cancelled_early.pop(run_id, None) is not None:  # its cancel came first
            outbox = _Outbox(run_id, self._batcher(topic))
            outbox.end("cancelled")
            return wire.reply(run_id, outbox.seq, "cancelled")
        if run_id in self._runs:
            error = ExecutorError(f"agent run {run_id} is already running on this worker")
            return wire.reply(run_id, 0, "failed", error=error)
        self._renew(topic)
        outbox = _Outbox(run_id, self._batcher(topic))
        entry = _Run(topic)
        self._runs[run_id] = entry
        task = entry.task = asyncio.ensure_future(
            self._drive(spec, provider, images, outbox, entry, Path(project_root))
        )
        try:
            return await task
        except asyncio.CancelledError:
            if not task.cancelled():  # this call was cancelled, not the run
                raise
            outcome = self._cancelled(entry)  # cancelled before it began
            outbox.end(outcome)
            return wire.reply(run_id, outbox.seq, outcome, error=self._expiry(entry))
        finally:
            del self._runs[run_id]

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run; its traces close as ``cancelled`` and its reply says so.

        False when no such run is going on here; a run not here yet is remembered for
        ``CANCEL_KEPT_S`` and ends cancelled at once if it comes.
        """
        entry = self._runs.get(run_id)
        if entry is None:
            self._remember_cancel(run_id)
            return False
        if entry.task is None or entry.task.done():
            return False
        return entry.task.cancel()

    def _remember_cancel(self, run_id: str) -> None:
        now = time.monotonic()
        for old, at in list(self._cancelled_early.items()):
            if now - at > CANCEL_KEPT_S:
                del self._cancelled_early[old]
        self._cancelled_early[run_id] = now

    async def runs(self) -> list[str]:
        """The ids of the runs going on here."""
        return list(self._runs)

    async def ping(self, topic: str) -> None:
        """The kernel on ``topic`` is alive: renew the lease of its runs."""
        self._renew(topic)

    async def aclose(self) -> None:
        """Cancel every run, stop the watchdog and close the chat clients."""
        for run_id in list(self._runs):
            await self.cancel(run_id)
        tasks = [entry.task for entry in self._runs.values() if entry.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        await self._clients.aclose()

    # The run.

    async def _drive(
        self,
        spec: AgentRunSpec,
        provider: ProviderWire,
        images: Sequence[wire.ImageBlob],
        outbox: _Outbox,
        entry: _Run,
        project_root: Path,
    ) -> dict[str, Any]:
        result: AgentResult | None = None
        error: BaseException | None = None
        outcome: wire.RunOutcome
        try:
            agent = self._agent(spec, provider, outbox, entry.topic, project_root)
            if images:
                await asyncio.to_thread(_keep_images, agent.attachments, images)
            result = await agent.run(spec.prompt, images=list(spec.images))
            outcome = "done"
        except asyncio.CancelledError:
            outcome, error = self._cancelled(entry), self._expiry(entry)
        except Exception as exc:  # the kernel raises it; a bug also leaves its traceback here
            if not isinstance(exc, BoonbError):
                log.exception("boonb: agent run %s crashed on this worker", outbox.run_id)
            outcome, error = "failed", exc
        outbox.end(outcome)
        return wire.reply(outbox.run_id, outbox.seq, outcome, result=result, error=error)

    def _cancelled(self, entry: _Run) -> wire.RunOutcome:
        """How a cancelled run ended: ``expired`` when the lease, not the kernel, stopped it."""
        return "expired" if entry.expired else "cancelled"

    def _expiry(self, entry: _Run) -> WorkerLost | None:
        """What the kernel raises for a run the lease stopped (nobody there asked for it)."""
        if not entry.expired:
            return None
        return WorkerLost(
            f"the Dask worker stopped this agent: it had not heard from this kernel for "
            f"{self.lease_s:.0f} s; check the network to the cluster, then retry"
        )

    def _agent(
        self,
        spec: AgentRunSpec,
        provider: ProviderWire,
        outbox: _Outbox,
        topic: str,
        project_root: Path,
    ) -> Agent:
        """The agent the kernel's ``AgentFactory.from_spec`` would build, recording to items."""
        bus = Bus()
        bus.subscribe(outbox.frame)
        parent = (
            TraceParent(spec.parent_trace_id, spec.parent_root_id)
            if spec.parent_trace_id is not None and spec.parent_root_id is not None
            else None
        )
        recorder = _RemoteRecorder(
            bus,
            outbox,
            session_id=WORKER_SESSION,
            chat_id=spec.chat_id,
            agent_id=spec.agent_id,
            workflow_run_id=spec.workflow_run_id,
            parent=parent,
        )
        agent = Agent(
            self._clients.get(provider),
            recorder=recorder,
            tools=self._resolve(topic, spec.tools),
            context=ToolContext(project_root=project_root),
            model=spec.model or provider.model,
            system_prompt=spec.system_prompt,
            max_turns=spec.max_turns,
            budget=spec.budget,
            provider_name=provider.name,
            max_tool_output=provider.tool_output_max_chars,
            attachments=self._attachments(),
        )
        agent.on_boundary = outbox.boundary
        return agent

    def _resolve(self, topic: str, names: Iterable[str] | None) -> list[Tool]:
        """The run's tools from its kernel's, in a local run's order; kernel-only ones refused."""
        mine = self._tools.get(topic, {})
        if names is None:
            chosen = list(mine.values())
        else:
            try:
                chosen = [mine[name] for name in names]
            except KeyError as missing:
                raise UnknownToolError(str(missing.args[0]), mine) from None
        return [KernelOnlyTool(t) if t.kernel_only else t for t in chosen]

    def _attachments(self) -> AttachmentStore:
        """Where runs' images are kept; staged beside them, so storing one is a rename."""
        if self._attachments_dir is None:
            self._attachments_dir = Path(tempfile.mkdtemp(prefix="boonb-attachments-"))
        root = self._attachments_dir
        return AttachmentStore(root, upload_dir=root / "staging")

    # Sending.

    def _batcher(self, topic: str) -> wire.Batcher:
        made = self._batchers.get(topic)
        if made is None:
            made = self._batchers[topic] = wire.Batcher(lambda batch: self._send(topic, batch))
        return made

    def _send(self, topic: str, batch: dict[str, Any]) -> None:
        try:
            self._emit(topic, batch)
        except Exception:  # the kernel notices: its wait for the run's last item times out
            log.exception("boonb: could not send %d items to %s", len(batch["items"]), topic)

    def _emit(self, topic: str, batch: dict[str, Any]) -> None:
        if self._emit_to is None:
            raise TypeError("AgentHost needs emit=... or a subclass that overrides _emit")
        self._emit_to(topic, batch)

    # The lease.

    def _renew(self, topic: str) -> None:
        self._leases[topic] = time.monotonic()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Cancel the runs of kernels whose lease ran out; ends when no run is left."""
        while self._runs:
            await asyncio.sleep(self.lease_s / 4)
            now = time.monotonic()
            for run_id, entry in list(self._runs.items()):
                if now - self._leases.get(entry.topic, now) > self.lease_s and entry.task:
                    log.warning(
                        "boonb: cancelling agent run %s: its kernel (%s) has not been heard "
                        "from for %.0f s",
                        run_id,
                        entry.topic,
                        self.lease_s,
                    )
                    entry.expired = True
                    entry.task.cancel()


def _loaded(blobs: Mapping[str, bytes]) -> tuple[list[Tool], dict[str, str]]:
    """The tools that load here, and why each other one did not, by name.

    A tool pickled by reference to a module the kernel has and this worker lacks fails
    here (``ModuleNotFoundError``); the kernel names it and says what to do.
    """
    loaded: list[Tool] = []
    failed: dict[str, str] = {}
    for name, blob in blobs.items():
        try:
            made = pickle.loads(blob)  # the kernel's own tools, trusted as its Dask tasks are
        except Exception as exc:  # unpickling raises anything a reduce function raises
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(made, Tool):
            failed[name] = f"not a Tool but a {type(made).__name__}"
            continue
        loaded.append(made)
    return loaded, failed


def _keep_images(store: AttachmentStore, images: Sequence[wire.ImageBlob]) -> None:
    """Store the run's images where its agent reads them (by content, as in the kernel)."""
    for blob in images:
        stored = store.add_bytes(blob.data, name=blob.sha256[:12])
        if stored.sha256 != blob.sha256:
            raise ExecutorError(
                f"an image sent with the run does not match its hash {blob.sha256[:12]}…; "
                "retry the run"
            )
