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
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal, cast

from distributed import Client
from distributed.actor import Actor

from boonb.agent.factory import AgentFactory
from boonb.agent.loop import AgentResult
from boonb.attachments import AttachmentStore
from boonb.engine import Engine, EngineFuture
from boonb.errors import ExecutorError, ExecutorUnavailable, WorkerLost
from boonb.executors import wire
from boonb.executors.dask_checks import check_reachable, pickled_tool
from boonb.executors.dask_host import DaskAgentHost
from boonb.executors.dask_hosts import (
    ACTOR_GONE,
    CALL_TIMEOUT_S,
    Host,
    NotSent,
    Sendable,
    either,
    greet,
    started,
)
from boonb.executors.dask_pool import Pool
from boonb.executors.replay import Replay
from boonb.executors.spec import AgentRunSpec, ExecutorStatus, ProviderWire

log = logging.getLogger("boonb.executors.dask")

CONNECT_TIMEOUT_S = CALL_TIMEOUT_S
"""How long to wait for the scheduler (a connect, a call), for a first worker, and for an
actor to start on a worker or to take this kernel's tools."""
RETRY_S = 2.0
"""A failed connect is tried again by the first run at least this long after it failed."""
CANCEL_GRACE_S = 5.0
"""How long a cancel waits for the worker to close the run's traces and say so."""
PROVIDERS_KEPT = 10_000
"""Chats whose provider the executor remembers for the trace export (oldest forgotten)."""


class DaskExecutor:
    """Runs agents on the workers of one Dask cluster (see the module).

    Built with :meth:`connect`, which returns at once; the connection is made on the
    engine, and :meth:`wait_ready` waits for it (``boonb.use_dask`` and ``%boonb`` do).
    A connect that failed is tried again by a later run (the scheduler may come up later,
    an adaptive cluster may scale up from no workers).
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
        self._pool = Pool(
            address=address,
            topic=self.topic,
            identity=self._identity,
            start=self._start_host,
            settings=factory.settings,
        )
        self._providers: OrderedDict[uuid.UUID, str] = OrderedDict()
        """The provider of each chat run here, newest last (see :meth:`provider_of`)."""
        self._shipped: dict[int, tuple[object, Sendable]] = {}
        """Tools checked to pickle, by ``id`` of the registered one: it, and what is sent."""
        self._failed_at = 0.0
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

    async def _connected(self) -> None:
        """Wait for the connection; one that failed is made anew (after ``RETRY_S``)."""
        ready = self._ready
        failed = ready.done() and (ready.cancelled() or ready.exception() is not None)
        if failed and not self._closed and time.monotonic() - self._failed_at >= RETRY_S:
            log.info("dask: connecting again to %s", self.address)
            self._ready = ready = self.engine.submit(self._connect())
        await asyncio.shield(asyncio.wrap_future(ready))

    async def _connect(self) -> None:
        try:
            if self._client is None:
                self._client = await self._new_client()
                self._client.subscribe_topic(self.topic, self._on_event)
            await self._first_worker(self._client)
            await self._pool.refresh(force=True)
        except BaseException:
            self._failed_at = time.monotonic()
            raise
        self.problem = None
        if self._beat is None:
            self._beat = asyncio.get_running_loop().create_task(self._pool.heartbeat())

    async def _new_client(self) -> Client:
        if self._closed:
            raise ExecutorUnavailable(_CLOSED)
        try:
            client: Client = await Client(
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
                "%boonb config executor=local to run agents in this kernel (boonb tries "
                "again with the next agent)"
            ) from None
        return client

    async def _first_worker(self, client: Client) -> None:
        """Wait a while for a worker: asking for one also makes an adaptive cluster scale up."""
        try:
            # An asynchronous client's method returns a coroutine (typed as returning None).
            waiting: Any = cast(Any, client).wait_for_workers(1)
            await asyncio.wait_for(waiting, CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            self.problem = self._pool.no_workers()
            raise ExecutorUnavailable(self.problem) from None

    def _on_event(self, event: tuple[float, Any]) -> None:
        """A wire batch from a worker (on the engine thread: the client lives there)."""
        _, message = event
        if isinstance(message, dict):
            self._replay.feed(message)

    async def _start_host(self, address: str) -> Host:
        """Start an actor of this kernel on the worker at ``address``; check its versions.

        Raises ``ExecutorUnavailable`` saying why the worker cannot be used; the actor's
        task is released on every failure, or the scheduler would keep it.
        """
        client = self._client
        if client is None:
            raise ExecutorUnavailable(_CLOSED)
        key = f"boonb-host-{self.factory.session_id.hex[:8]}-{uuid.uuid4().hex}"
        future = client.submit(
            DaskAgentHost, actor=True, workers=[address], allow_other_workers=False, key=key
        )
        try:
            await started(future, address)
            # Bound to this client (not the process's default one, maybe the user's).
            with client.as_current():
                actor = Actor(DaskAgentHost, address, key)
            actor._future = future  # keeps the actor alive while this kernel holds it
            await greet(actor, address)
        except BaseException:
            with contextlib.suppress(Exception):  # the scheduler may be gone too
                future.release()
            raise
        return Host(address, actor, future)

    async def _identity(self) -> dict[str, Any]:
        """The scheduler's identity, with its workers."""
        client = self._client
        if client is None or client.scheduler is None:
            raise ExecutorUnavailable(_CLOSED)
        identity: dict[str, Any] = await client.scheduler.identity()
        return identity

    # Runs.

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        """Run ``spec`` on the least busy worker; see :class:`~boonb.executors.Executor`."""
        await self._connected()
        tools = self._tools_of(spec)
        # By name, in the kernel's order: the worker's set is what this kernel sent so far.
        spec = spec.model_copy(update={"tools": tuple(t.name for t in tools)})
        provider = self._provider()
        images = await self._images(spec)
        run_id = str(spec.chat_id)
        self._replay.begin(spec)
        try:
            try:
                return await self._dispatch(spec, tools, provider, images)
            except NotSent as first:  # nothing ran: another worker (or a new actor) may
                log.warning("dask: run %s not sent (%s); trying another worker", run_id, first)
                await self._pool.refresh(force=True)
                return await self._dispatch(spec, tools, provider, images)
        except NotSent as again:
            raise WorkerLost(
                f"this agent could not be sent to a Dask worker of {self.address} ({again}); "
                "retry it, or see the cluster's logs (client.get_worker_logs())"
            ) from None
        finally:
            self._replay.forget(run_id)

    async def _dispatch(
        self,
        spec: AgentRunSpec,
        tools: Sequence[Sendable],
        provider: ProviderWire,
        images: list[wire.ImageBlob],
    ) -> AgentResult:
        host = await self._pool.pick()
        check_reachable(provider, host.address)
        self._remember_provider(spec.chat_id, provider.name)
        run_id = str(spec.chat_id)
        host.running.add(run_id)
        try:
            await host.send_tools(tools, self.topic)
            return await self._run_on(host, spec, provider, images)
        finally:
            host.running.discard(run_id)
            await self._pool.release()

    async def _run_on(
        self,
        host: Host,
        spec: AgentRunSpec,
        provider: ProviderWire,
        images: list[wire.ImageBlob],
    ) -> AgentResult:
        run_id = str(spec.chat_id)
        project_root = str(self.factory.settings().project)
        call = host.call("run", spec, provider, images, self.topic, project_root=project_root)
        try:
            await asyncio.wait(either(call, host), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await asyncio.shield(self._wind_down(host, run_id, call))
            raise
        if not call.done():
            call.cancel()
            raise self._lost(host, run_id, host.lost.result())
        try:
            reply = call.result()
        except OSError as exc:  # this call's connection broke; is the worker gone?
            raise await self._broken(host, run_id, exc) from None
        except RuntimeError as exc:  # the actor's task was released (its worker left)
            self._pool.lose(host, ACTOR_GONE)
            raise self._lost(host, run_id, str(exc), what=f"{ACTOR_GONE} mid-run") from None
        except Exception as exc:  # the actor's method itself failed: a bug, or a version skew
            raise ExecutorError(
                f"the Dask worker {host.address} could not run the agent "
                f"({type(exc).__name__}: {exc}); see the worker's log, or run it with "
                "%boonb config executor=local"
            ) from exc
        await self._replay.finished(run_id, reply["last_seq"])
        return wire.result_of(reply)

    async def _broken(self, host: Host, run_id: str, exc: OSError) -> WorkerLost:
        """The error of a run whose call failed: only it fails, unless its worker is gone.

        distributed turns any connection error of one call into an ``OSError``; a worker
        that still answers keeps its other runs, and this one is stopped there.
        """
        period = self.factory.settings().dask_heartbeat_s
        try:
            await asyncio.wait_for(host.call("cancel", run_id), 2 * period)
        except (OSError, RuntimeError, NotSent):  # TimeoutError is an OSError
            self._pool.lose(host, "died")
            return self._lost(host, run_id, str(exc))
        message = (
            f"the connection to the Dask worker {host.address} broke during this agent's run "
            f"({exc}); the run there was stopped and what it finished is kept. Retry the task"
        )
        self._replay.lost(run_id, message)
        return WorkerLost(message)

    async def _wind_down(
        self, host: Host, run_id: str, call: asyncio.Future[dict[str, Any]]
    ) -> None:
        """After a cancel: stop the run on the worker, then wait for its last frames.

        The worker closes the run's traces as cancelled; those rows are replayed here
        before ``CancelledError`` goes on, as a local run's would be written. A cancel
        that reaches the worker before the run does is remembered there: the run then
        ends cancelled as soon as it arrives.
        """
        try:
            async with asyncio.timeout(CANCEL_GRACE_S):
                if not await host.call("cancel", run_id) and not call.done():
                    log.info(
                        "dask: run %s cancelled on %s before it got there", run_id, host.address
                    )
                await asyncio.wait(either(call, host), return_when=asyncio.FIRST_COMPLETED)
                if call.done() and not call.cancelled() and call.exception() is None:
                    await self._replay.finished(run_id, call.result()["last_seq"])
        except (TimeoutError, OSError, RuntimeError, ExecutorError, NotSent) as exc:
            log.warning(
                "dask: run %s on %s did not confirm its cancel: %s", run_id, host.address, exc
            )
        finally:
            call.cancel()

    def _lost(
        self,
        host: Host,
        run_id: str,
        why: str,
        *,
        what: str = "died or stopped answering mid-run",
    ) -> WorkerLost:
        message = (
            f"the Dask worker {host.address} running this agent {what} ({why}); "
            "what it finished is kept. Retry the task, or see the cluster's "
            "logs (client.get_worker_logs())"
        )
        self._replay.lost(run_id, message)
        return WorkerLost(message)

    def _tools_of(self, spec: AgentRunSpec) -> list[Sendable]:
        """The spec's tools as they go to the workers; one that cannot be pickled is refused."""
        tools = self.factory.tools
        chosen = list(tools) if spec.tools is None else tools.resolve(spec.tools)
        sendable = []
        for tool in chosen:
            known = self._shipped.get(id(tool))
            if known is None or known[0] is not tool:
                known = self._shipped[id(tool)] = (
                    tool,
                    Sendable(tool.name, id(tool), pickled_tool(tool)),
                )
            sendable.append(known[1])
        return sendable

    def _provider(self) -> ProviderWire:
        return wire.provider_wire(
            self.factory.provider(),
            tool_output_max_chars=self.factory.settings().tool_output_max_chars,
        )

    async def _images(self, spec: AgentRunSpec) -> list[wire.ImageBlob]:
        """The bytes of the prompt's images, read off the loop."""
        if not spec.images:
            return []
        # Only reads stored images, by content: the project's folder is all it needs, as
        # for a local agent (Agent's own store).
        store = AttachmentStore(self.factory.settings().project)
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
        connected = self._ready.done()
        return ExecutorStatus(
            name="dask",
            address=self.address,
            # Copied first: the engine thread may change them while another thread asks.
            workers=tuple(sorted(list(self._pool.hosts))),
            running=sum(len(h.running) for h in list(self._pool.hosts.values())),
            problem=self.problem or self._pool.problem or (None if connected else "connecting"),
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
        self._pool.closed = True
        for task in list(self._pool.background):  # starting hosts release their actors
            task.cancel()
        stops = [h.stop(r) for h in self._pool.hosts.values() for r in list(h.running)]
        if stops:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*stops), CANCEL_GRACE_S)
        for host in list(self._pool.hosts.values()):
            self._pool.lose(host, "was let go (the executor closed)", quiet=True)
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


_CLOSED = "the Dask executor was closed; run the agent again (a new one is made)"
