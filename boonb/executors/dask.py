"""The Dask executor: background and workflow agents run on a Dask distributed cluster.

Each worker holds one :class:`~boonb.executors.dask_host.DaskAgentHost` actor of this
kernel, which runs many agents at once on the worker's loop. An agent's frames and rows
come back as wire batches on this kernel's topic (``log_event`` on the worker,
``subscribe_topic`` here) and are replayed on the engine thread, so the kernel stays the
one writer of the project database and the rows are those a local run writes.

Everything here runs on the engine's loop: the executor's own asynchronous ``Client`` is
made there (never the user's), so topic handlers and actor replies arrive on the engine
thread, where ``Tasks`` and workflow runs expect their frames.

What crosses the network: the spec, the tools (cloudpickle, once per actor), image bytes,
and the provider's settings with each ``run`` call, worker to kernel directly (not through
the scheduler); the key is a ``SecretStr`` so a debug log of the message prints stars.
Through the scheduler go the wire batches (prompts, outputs, snapshots, never a key).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal
from urllib.parse import urlsplit

import cloudpickle
from distributed import Client
from distributed.actor import Actor

from boonb.agent.factory import AgentFactory
from boonb.agent.loop import AgentResult
from boonb.agent.tools.definition import Tool
from boonb.attachments import AttachmentStore
from boonb.engine import Engine, EngineFuture
from boonb.errors import ExecutorError, ExecutorUnavailable, ToolError, WorkerLost
from boonb.executors import wire
from boonb.executors.dask_host import DaskAgentHost
from boonb.executors.host import KernelOnlyTool
from boonb.executors.replay import Replay
from boonb.executors.spec import AgentRunSpec, ExecutorStatus, ProviderWire

log = logging.getLogger("boonb.executors.dask")

CONNECT_TIMEOUT_S = 20.0
"""How long to wait for the scheduler, and for an actor to start on a worker."""
REFRESH_S = 5.0
"""How often the workers are listed again (new ones get an actor, gone ones are dropped)."""
CANCEL_GRACE_S = 5.0
"""How long a cancel waits for the worker to close the run's traces and say so."""
PROVIDERS_KEPT = 10_000
"""Chats whose provider the executor remembers for the trace export (oldest forgotten)."""
MISSED_BEATS = 2
"""Heartbeats a worker may miss before its runs are failed as lost (a frozen worker)."""


@dataclass(eq=False)
class _Host:
    """The kernel's actor on one worker, and the runs it has there."""

    address: str
    actor: Actor
    key: str
    running: set[str] = field(default_factory=set)
    tools: dict[str, int] = field(default_factory=dict)
    """Tools sent, by name: the ``id`` of the object sent (one registered anew is sent again)."""
    missed: int = 0
    lost: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Set, with why, when the worker died or stopped answering."""


class DaskExecutor:
    """Runs agents on the workers of one Dask cluster (see the module).

    Built with :meth:`connect`, which returns at once; the connection is made on the
    engine, and :meth:`wait_ready` waits for it (``boonb.use_dask`` and ``%boonb`` do).
    """

    name: Literal["local", "dask"] = "dask"

    def __init__(
        self,
        factory: AgentFactory,
        *,
        engine: Engine,
        address: str,
        security: Any = None,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.address = address
        self._security = security
        self.topic = f"boonb-{factory.session_id}"
        self._client: Client | None = None
        self._replay = Replay(factory)
        self._hosts: dict[str, _Host] = {}
        self._providers: OrderedDict[uuid.UUID, str] = OrderedDict()
        """The provider of each chat run here, newest last (see :meth:`provider_of`)."""
        self._shipped: dict[int, tuple[Tool, Tool]] = {}
        """Tools checked to pickle, by ``id`` of the registered one: it, and what is sent."""
        self._listed_at = 0.0
        self._listing: asyncio.Lock | None = None
        self._freed: asyncio.Condition | None = None
        self._beat: asyncio.Task[None] | None = None
        self._closed = False
        self.problem: str | None = None
        self._ready: EngineFuture[None] = engine.submit(self._connect())

    @classmethod
    def connect(
        cls,
        factory: AgentFactory,
        *,
        engine: Engine,
        address: str | None = None,
        client: Any = None,
    ) -> DaskExecutor:
        """An executor for the cluster at ``address``, or of the user's ``client``.

        Of a user's ``distributed.Client`` only the scheduler's address and the security
        settings are taken: the executor makes its own asynchronous client on the engine.
        """
        security = None
        if client is not None:
            if not isinstance(client, Client):
                raise ExecutorUnavailable(
                    f"boonb.use_dask takes a distributed.Client, got {type(client).__name__}; "
                    "make one with Client('tcp://scheduler:8786') (or Client(cluster))"
                )
            if client.status != "running" or client.scheduler is None:
                raise ExecutorUnavailable(
                    f"this Dask client is {client.status}; give boonb.use_dask a running client"
                )
            address, security = client.scheduler.address, client.security
        if not address:
            raise ExecutorUnavailable(
                "executor=dask needs a Dask scheduler: set BOONB_DASK_ADDRESS (or %boonb config "
                "dask_address=tcp://host:8786), or call boonb.use_dask(client); "
                "%boonb config executor=local runs agents in this kernel"
            )
        return cls(factory, engine=engine, address=str(address), security=security)

    def wait_ready(self, timeout: float = CONNECT_TIMEOUT_S + 10) -> None:
        """Block (not on the engine) until connected; raises why it could not connect."""
        try:
            self._ready.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ExecutorUnavailable(
                f"still connecting to the Dask scheduler at {self.address} after {timeout:.0f} s; "
                "check that it runs, or %boonb config executor=local"
            ) from None

    # Connection and workers.

    async def _connect(self) -> None:
        self._listing = asyncio.Lock()
        self._freed = asyncio.Condition()
        try:
            self._client = await Client(
                self.address,
                asynchronous=True,
                security=self._security,
                set_as_default=False,
                # Actor calls go to the worker directly: the provider key in them then
                # never passes through the scheduler.
                direct_to_workers=True,
                timeout=CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            self.problem = f"cannot reach the Dask scheduler at {self.address} ({exc})"
            raise ExecutorUnavailable(
                f"{self.problem}; check that it runs and BOONB_DASK_ADDRESS, or "
                "%boonb config executor=local to run agents in this kernel"
            ) from None
        self._client.subscribe_topic(self.topic, self._on_event)
        await self._list_workers()
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    def _on_event(self, event: tuple[float, Any]) -> None:
        """A wire batch from a worker (on the engine thread: the client lives there)."""
        _, message = event
        if isinstance(message, dict):
            self._replay.feed(message)

    async def _list_workers(self, *, force: bool = False) -> None:
        """Give each new worker an actor, drop gone ones; at most every ``REFRESH_S``."""
        assert self._listing is not None and self._client is not None
        async with self._listing:
            if not force and time.monotonic() - self._listed_at < REFRESH_S and self._hosts:
                return
            scheduler = self._client.scheduler
            assert scheduler is not None  # a connected client has one
            identity = await scheduler.identity()
            workers = sorted(identity.get("workers", {}))
            for address in set(self._hosts) - set(workers):
                self._lose(self._hosts[address], "left the cluster")
            new = [a for a in workers if a not in self._hosts]
            started = await asyncio.gather(
                *(self._start_host(a) for a in new), return_exceptions=True
            )
            for address, host in zip(new, started, strict=True):
                if isinstance(host, ExecutorUnavailable):
                    raise host
                if isinstance(host, BaseException):  # it went away while we asked
                    log.warning("dask: no boonb actor on worker %s: %s", address, host)
                    continue
                self._hosts[address] = host
            self._listed_at = time.monotonic()
            self.problem = None if self._hosts else self._no_workers()
            if not self._hosts:
                raise ExecutorUnavailable(self.problem)

    def _no_workers(self) -> str:
        return (
            f"the Dask cluster at {self.address} has no workers; start some "
            f"(dask worker {self.address}), or %boonb config executor=local"
        )

    async def _start_host(self, address: str) -> _Host:
        """Start an actor of this kernel on the worker at ``address``; check its versions."""
        assert self._client is not None
        key = f"boonb-host-{self.factory.session_id.hex[:8]}-{uuid.uuid4().hex}"
        future = self._client.submit(
            DaskAgentHost, actor=True, workers=[address], allow_other_workers=False, key=key
        )
        try:
            await asyncio.wait_for(future, CONNECT_TIMEOUT_S)
        except (OSError, asyncio.CancelledError):  # timed out, or the worker went away
            future.release()
            raise
        except Exception as exc:  # the worker could not make the actor: no boonb there
            future.release()
            raise ExecutorUnavailable(
                f"boonb could not start on the Dask worker {address} ({type(exc).__name__}: "
                f"{exc}); install boonb {version('boonb')} with its dask extra on the workers"
            ) from None
        # Bound to this client (not the process's default one, maybe the user's).
        with self._client.as_current():
            actor = Actor(DaskAgentHost, address, key)
        actor._future = future  # keeps the actor alive while this kernel holds it
        hello = await asyncio.wait_for(actor.hello(), CONNECT_TIMEOUT_S)
        mine = version("boonb")
        if hello.get("boonb") != mine or hello.get("wire") != wire.WIRE_VERSION:
            future.release()
            raise ExecutorUnavailable(
                f"the Dask worker {address} runs boonb {hello.get('boonb')} (wire "
                f"{hello.get('wire')}), this kernel boonb {mine} (wire "
                f"{wire.WIRE_VERSION}); install the same boonb on the workers"
            )
        return _Host(address, actor, key)

    def _lose(self, host: _Host, why: str, *, quiet: bool = False) -> None:
        """Forget a worker's actor; its runs in flight fail as lost (they wait on ``lost``)."""
        if self._hosts.get(host.address) is host:
            del self._hosts[host.address]
        if not host.lost.done():
            host.lost.set_result(why)
        with contextlib.suppress(Exception):  # the scheduler may be gone too
            host.actor._future.release()  # type: ignore[union-attr]
        if not quiet:
            log.warning("dask: worker %s %s", host.address, why)

    async def _heartbeat(self) -> None:
        """Ping each actor: renews this kernel's lease there, and finds frozen workers."""
        while not self._closed:
            period = self.factory.settings().dask_heartbeat_s
            await asyncio.sleep(period)
            hosts = list(self._hosts.values())
            try:
                await asyncio.gather(*(self._ping(h, period) for h in hosts))
            except Exception:  # never let the heartbeat die silently: runs would go unwatched
                log.exception("dask: the heartbeat to the workers failed")

    async def _ping(self, host: _Host, period: float) -> None:
        try:
            await asyncio.wait_for(_reply(host.actor.ping(self.topic)), period)
        except TimeoutError:  # before OSError, which it derives from
            host.missed += 1
            if host.missed >= MISSED_BEATS:
                self._lose(host, f"stopped answering ({host.missed} heartbeats missed)")
            return
        except (OSError, RuntimeError):
            self._lose(host, "died")
            return
        host.missed = 0

    # Runs.

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        """Run ``spec`` on the least busy worker; see :class:`~boonb.executors.Executor`."""
        await asyncio.shield(asyncio.wrap_future(self._ready))
        tools = self._tools_of(spec)
        # By name, in the kernel's order: the worker's set is what this kernel sent so far.
        spec = spec.model_copy(update={"tools": tuple(t.name for t in tools)})
        provider = self._provider()
        images = await self._images(spec)
        host = await self._pick()
        _check_reachable(provider, host.address)
        self._remember_provider(spec.chat_id, provider.name)
        run_id = str(spec.chat_id)
        host.running.add(run_id)
        self._replay.begin(spec)
        try:
            await self._send_tools(host, tools)
            return await self._run_on(host, spec, provider, images)
        finally:
            host.running.discard(run_id)
            self._replay.forget(run_id)
            assert self._freed is not None
            async with self._freed:
                self._freed.notify()

    async def _run_on(
        self,
        host: _Host,
        spec: AgentRunSpec,
        provider: ProviderWire,
        images: list[wire.ImageBlob],
    ) -> AgentResult:
        run_id = str(spec.chat_id)
        try:
            project_root = str(self.factory.settings().project)
            call = asyncio.ensure_future(
                _reply(
                    host.actor.run(spec, provider, images, self.topic, project_root=project_root)
                )
            )
        except RuntimeError as exc:  # "Worker holding Actor was lost"
            raise self._lost(host, run_id, str(exc)) from None
        try:
            await asyncio.wait(_either(call, host.lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await asyncio.shield(self._wind_down(host, run_id, call))
            raise
        if not call.done():
            call.cancel()
            raise self._lost(host, run_id, host.lost.result())
        try:
            reply = call.result()
        except OSError as exc:
            self._lose(host, "died")
            raise self._lost(host, run_id, str(exc)) from None
        except RuntimeError as exc:  # the actor's task was released (its worker left)
            raise self._lost(host, run_id, str(exc)) from None
        except Exception as exc:  # the actor's method itself failed: a bug, or a version skew
            raise ExecutorError(
                f"the Dask worker {host.address} could not run the agent "
                f"({type(exc).__name__}: {exc}); see the worker's log, or run it with "
                "%boonb config executor=local"
            ) from exc
        await self._replay.finished(run_id, reply["last_seq"])
        return wire.result_of(reply)

    async def _wind_down(
        self, host: _Host, run_id: str, call: asyncio.Future[dict[str, Any]]
    ) -> None:
        """After a cancel: stop the run on the worker, then wait for its last frames.

        The worker closes the run's traces as cancelled; those rows are replayed here
        before ``CancelledError`` goes on, as a local run's would be written.
        """
        try:
            async with asyncio.timeout(CANCEL_GRACE_S):
                await host.actor.cancel(run_id)
                await asyncio.wait(_either(call, host.lost), return_when=asyncio.FIRST_COMPLETED)
                if call.done() and call.exception() is None:
                    await self._replay.finished(run_id, call.result()["last_seq"])
        except (TimeoutError, OSError, RuntimeError, ExecutorError) as exc:
            log.warning(
                "dask: run %s on %s did not confirm its cancel: %s", run_id, host.address, exc
            )
        finally:
            call.cancel()

    def _lost(self, host: _Host, run_id: str, why: str) -> WorkerLost:
        message = (
            f"the Dask worker {host.address} running this agent died or stopped answering "
            f"mid-run ({why}); what it finished is kept. Retry the task, or see the cluster's "
            "logs (client.get_worker_logs())"
        )
        self._replay.lost(run_id, message)
        return WorkerLost(message)

    async def _pick(self) -> _Host:
        """The worker with the fewest runs of this kernel, waiting while all are full."""
        assert self._freed is not None
        try:
            await self._list_workers()
        except (OSError, RuntimeError) as exc:
            raise ExecutorUnavailable(
                f"cannot list the Dask cluster's workers at {self.address} ({exc}); "
                "check the scheduler, or %boonb config executor=local"
            ) from None
        limit = self.factory.settings().dask_agents_per_worker
        async with self._freed:
            while True:
                if not self._hosts:
                    await self._list_workers(force=True)
                host = min(self._hosts.values(), key=lambda h: len(h.running))
                if len(host.running) < limit:
                    return host
                await self._freed.wait()

    def _tools_of(self, spec: AgentRunSpec) -> list[Tool]:
        """The spec's tools as they go to the workers; one that cannot be pickled is refused.

        A tool that would not pickle must be refused here: an actor call whose arguments
        fail to serialise never returns (distributed loses the error in a callback).
        """
        tools = self.factory.tools
        chosen = list(tools) if spec.tools is None else tools.resolve(spec.tools)
        return [self._checked(tool) for tool in chosen]

    def _checked(self, tool: Tool) -> Tool:
        """The tool as sent (see :func:`_shippable`), checked once that it pickles."""
        known = self._shipped.get(id(tool))
        if known is not None and known[0] is tool:
            return known[1]
        shipped = _shippable(tool)
        try:
            cloudpickle.dumps(shipped)
        except Exception as exc:  # pickling raises many types (TypeError, PicklingError, ...)
            raise ExecutorError(
                f"the tool {tool.name!r} cannot be sent to the Dask workers "
                f"({type(exc).__name__}: {exc}); define it at the top level of a notebook "
                "cell or in a module the workers can import, or run with "
                "%boonb config executor=local"
            ) from None
        self._shipped[id(tool)] = (tool, shipped)
        return shipped

    async def _send_tools(self, host: _Host, tools: Sequence[Tool]) -> None:
        """Send the actor the tools it does not have yet (each once per actor)."""
        new = [t for t in tools if host.tools.get(t.name) != id(t)]
        if not new:
            return
        for tool in new:
            host.tools[tool.name] = id(tool)
        try:
            await host.actor.register_tools(new, topic=self.topic)
        except (OSError, RuntimeError) as exc:
            for tool in new:
                host.tools.pop(tool.name, None)
            self._lose(host, "died")
            raise WorkerLost(
                f"the Dask worker {host.address} died before the agent started ({exc}); retry it"
            ) from None

    def _provider(self) -> ProviderWire:
        return wire.provider_wire(
            self.factory.provider(),
            tool_output_max_chars=self.factory.settings().tool_output_max_chars,
        )

    async def _images(self, spec: AgentRunSpec) -> list[wire.ImageBlob]:
        """The bytes of the prompt's images, read off the loop."""
        if not spec.images:
            return []
        settings = self.factory.settings()
        store = AttachmentStore(
            settings.project,
            upload_dir=settings.upload_dir,
            max_size_mb=settings.max_attachment_size_mb,
        )
        return await asyncio.to_thread(wire.image_blobs, list(spec.images), store)

    def provider_of(self, chat_id: uuid.UUID) -> str | None:
        """The provider a chat run on the workers used (its model calls' export spans say it).

        A local chat's provider is found on its live agent; a remote chat has none in the
        kernel, so the executor remembers the last ``PROVIDERS_KEPT`` chats' (from any thread).
        """
        return self._providers.get(chat_id)

    def _remember_provider(self, chat_id: uuid.UUID, name: str) -> None:
        self._providers[chat_id] = name
        while len(self._providers) > PROVIDERS_KEPT:
            self._providers.popitem(last=False)

    # Status and closing.

    def describe(self) -> ExecutorStatus:
        return ExecutorStatus(
            name="dask",
            address=self.address,
            # Copied first: the engine thread may change them while another thread asks.
            workers=tuple(sorted(list(self._hosts))),
            running=sum(len(h.running) for h in list(self._hosts.values())),
            problem=self.problem if self._ready.done() else self.problem or "connecting",
        )

    async def aclose(self) -> None:
        """Stop this kernel's runs on the workers, then close the executor's own client.

        The user's client (``boonb.use_dask``) is never closed. Runs are cancelled first:
        a worker goes on running an agent whose kernel has let go of it.
        """
        self._closed = True
        with contextlib.suppress(Exception):  # it never connected: nothing to close
            await asyncio.shield(asyncio.wrap_future(self._ready))
        if self._beat is not None:
            self._beat.cancel()
        stops = [h.actor.cancel(r) for h in self._hosts.values() for r in list(h.running)]
        if stops:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*(_reply(s) for s in stops)), CANCEL_GRACE_S)
        for host in list(self._hosts.values()):
            self._lose(host, "was let go (the executor closed)", quiet=True)
        client, self._client = self._client, None
        if client is not None:
            topic = self.topic
            with contextlib.suppress(Exception):  # best effort: the scheduler may be gone
                client.unsubscribe_topic(topic)
                # The scheduler keeps a topic's last 1,000 events for any client to read;
                # this kernel's prompts and outputs need not stay there (a private API,
                # hence a lambda: sent by value, the scheduler needs no boonb).
                await client.run_on_scheduler(
                    lambda dask_scheduler: dask_scheduler._broker.truncate(topic)
                )
            await client.close()


def _either(call: asyncio.Future[Any], lost: asyncio.Future[str]) -> list[asyncio.Future[Any]]:
    """What a run waits on: its reply, or its worker being lost."""
    return [call, lost]


def _refused(*args: Any, **kwargs: Any) -> None:
    """Stands in for a kernel-only tool's function on a worker (never called there)."""
    raise ToolError("this tool runs only in the kernel")


def _shippable(tool: Tool) -> Tool:
    """The tool as sent to a worker: a kernel-only one without its function.

    Its function reaches into the kernel (the notebook, the kernel's tasks) and may not
    pickle; the worker only needs its name and schema, to refuse it as the kernel would.
    """
    if not tool.kernel_only:
        return tool
    stub = KernelOnlyTool(tool)
    stub.function = _refused
    return stub


async def _reply(call: Any) -> dict[str, Any]:
    """Await an actor call (an ``ActorFuture``) as a coroutine, so it can be a task."""
    reply: dict[str, Any] = await call
    return reply


def _check_reachable(provider: ProviderWire, worker: str) -> None:
    """Refuse a model server on this machine's loopback when the worker is elsewhere."""
    url_host = urlsplit(provider.profile.base_url).hostname or ""
    worker_host = urlsplit(worker).hostname or ""
    if not _loopback(url_host) or _loopback(worker_host) or _is_this_machine(worker_host):
        return
    what = (
        "the built-in simulator listens on this machine only"
        if provider.name == "sim"
        else f"the model server at {provider.profile.base_url} is on this machine's loopback"
    )
    raise ExecutorUnavailable(
        f"{what}, and the Dask worker {worker} runs on another host; give the workers a "
        "model server they can reach (%boonb config base_url=...), or executor=local"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_this_machine(host: str) -> bool:
    try:
        mine = {socket.gethostname(), *socket.gethostbyname_ex(socket.gethostname())[2]}
    except OSError:
        mine = {socket.gethostname()}
    return host in mine
