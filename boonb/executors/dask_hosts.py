"""The kernel's actor on one Dask worker (:class:`Host`): starting it, sending it tools.

No Dask import here (only ``dask`` and ``dask_host`` import distributed): the actor and
its task arrive as objects, and everything done with them is a method call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from boonb.errors import ExecutorUnavailable, WorkerLost
from boonb.executors import wire
from boonb.executors.dask_checks import not_loaded

log = logging.getLogger("boonb.executors.dask")

CALL_TIMEOUT_S = 20.0
"""How long an actor may take to start, to say hello, or to take this kernel's tools."""
ACTOR_GONE = "lost its actor (the connection to the scheduler dropped, or the worker left)"


@dataclass(frozen=True)
class Sendable:
    """A tool as the workers get it: its name, the registered object's ``id``, its pickle."""

    name: str
    ident: int
    blob: bytes


class NotSent(WorkerLost):
    """The run never reached the worker: it may go to another one (tried once)."""


@dataclass(eq=False)
class Host:
    """The kernel's actor on one worker, and the runs it has there."""

    address: str
    actor: Any
    """The ``distributed.actor.Actor`` (every use of it is a call)."""
    future: Any
    """The actor's task (a ``distributed.Future``): held, it keeps the actor alive."""
    running: set[str] = field(default_factory=set)
    tools: dict[str, tuple[int, asyncio.Future[None]]] = field(default_factory=dict)
    """Tools sent or being sent, by name: the ``id`` of the object sent (one registered
    anew is sent again), and the send, done when the worker has it."""
    missed: int = 0
    lost: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Set, with why, when the worker died or stopped answering."""
    _sends: set[asyncio.Task[None]] = field(default_factory=set)

    def usable(self) -> bool:
        """False once lost, or once distributed let go of the actor (a scheduler reconnect)."""
        return not self.lost.done() and self.future.status in ("finished", "pending")

    def drop(self, why: str, *, quiet: bool = False) -> None:
        """Let go of the actor; the runs in flight fail as lost (they wait on ``lost``)."""
        if not self.lost.done():
            self.lost.set_result(why)
        with contextlib.suppress(Exception):  # the scheduler may be gone too
            self.future.release()
        if not quiet:
            log.warning("dask: worker %s %s", self.address, why)

    def call(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """An actor call as an asyncio future; ``NotSent`` if the actor is gone already."""
        try:
            made = asyncio.ensure_future(_reply(getattr(self.actor, method)(*args, **kwargs)))
        except RuntimeError as exc:  # "Worker holding Actor was lost": nothing was sent
            self.drop(ACTOR_GONE)
            raise NotSent(f"the worker {self.address} {ACTOR_GONE}: {exc}") from None
        made.add_done_callback(retrieved)
        return made

    async def send_tools(self, tools: Sequence[Sendable], topic: str) -> None:
        """Send the actor the tools it does not have yet (each once per actor).

        A run whose tools another run is sending waits for that send: a ``run`` call may
        overtake a ``register_tools`` call on the way (they use separate connections).
        """
        waits: set[asyncio.Future[None]] = set()
        new = []
        for tool in tools:
            sent = self.tools.get(tool.name)
            if sent is not None and sent[0] == tool.ident:
                waits.add(sent[1])
            else:
                new.append(tool)
        if new:
            sending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            sending.add_done_callback(retrieved)
            for tool in new:
                self.tools[tool.name] = (tool.ident, sending)
            waits.add(sending)
            # A task of its own: the run that started the send may be cancelled, not it.
            task = asyncio.ensure_future(self._register(new, topic, sending))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        for wait in waits:
            await asyncio.shield(wait)

    async def _register(
        self, tools: list[Sendable], topic: str, sending: asyncio.Future[None]
    ) -> None:
        """One send of tools; ``sending`` ends with its outcome (runs wait on it)."""
        try:
            failed = await self._registered(tools, topic)
            if failed:
                raise not_loaded(self.address, failed)
        except BaseException as exc:
            for tool in tools:  # sent again by the next run that needs them
                if self.tools.get(tool.name, (0, None))[1] is sending:
                    del self.tools[tool.name]
            if not sending.done():
                sending.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        sending.set_result(None)

    async def _registered(self, tools: list[Sendable], topic: str) -> dict[str, str]:
        """Send tools as pickles (each loads alone there); why each that failed did, by name."""
        call = self.call("register_tools", {t.name: t.blob for t in tools}, topic=topic)
        done, _ = await asyncio.wait(
            either(call, self), timeout=CALL_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if call not in done:
            call.cancel()
            why = self.lost.result() if self.lost.done() else "did not take this kernel's tools"
            self.drop(why)
            raise NotSent(f"the worker {self.address} {why}")
        try:
            failed: dict[str, str] = call.result()
        except (OSError, RuntimeError) as exc:
            self.drop("died")
            raise NotSent(f"the worker {self.address} died ({exc})") from None
        return failed

    async def stop(self, run_id: str) -> None:
        """Cancel a run there, if the worker answers (if not, nothing runs there)."""
        with contextlib.suppress(Exception):
            await self.call("cancel", run_id)


def either(call: asyncio.Future[Any], host: Host) -> list[asyncio.Future[Any]]:
    """What a call waits on: its reply, or its worker being lost."""
    return [call, host.lost]


def retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: nobody may await it after a cancel or a loss."""
    if not future.cancelled():
        future.exception()


async def _reply(call: Any) -> Any:
    """Await an actor call (an ``ActorFuture``) as a coroutine, so it can be a task."""
    return await call


async def started(future: Any, address: str) -> None:
    """Wait for an actor's task to start on the worker; why it could not, if not."""
    try:
        await asyncio.wait_for(future, CALL_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except (OSError, TimeoutError) as exc:
        raise ExecutorUnavailable(
            f"the Dask worker {address} did not start boonb's actor in "
            f"{CALL_TIMEOUT_S:.0f} s ({exc!r}); it is busy or going away"
        ) from None
    except ImportError as exc:  # the worker could not unpickle the actor: no boonb there
        raise ExecutorUnavailable(
            f"boonb is not installed on the Dask worker {address} ({type(exc).__name__}: "
            f"{exc}); install boonb {version('boonb')} with its dask extra on the workers"
        ) from None
    except Exception as exc:
        raise ExecutorUnavailable(
            f"boonb could not start on the Dask worker {address} ({type(exc).__name__}: "
            f"{exc}); see the worker's log (client.get_worker_logs())"
        ) from None


async def greet(actor: Any, address: str) -> None:
    """Ask the actor its versions: a worker that cannot answer, or differs, is not used."""
    try:
        asked = actor.hello()
    except RuntimeError as exc:  # "Worker holding Actor was lost": it left meanwhile
        raise ExecutorUnavailable(f"the Dask worker {address} {ACTOR_GONE} ({exc})") from None
    try:
        hello = await asyncio.wait_for(_reply(asked), CALL_TIMEOUT_S)
    except OSError as exc:  # TimeoutError is an OSError
        raise ExecutorUnavailable(
            f"this kernel cannot reach the Dask worker {address} directly ({exc!r}): boonb "
            "sends each run, with its API key, straight to the worker, not through the "
            "scheduler; run the kernel where it can reach the workers' network"
        ) from None
    except Exception as exc:
        raise ExecutorUnavailable(
            f"boonb on the Dask worker {address} failed its handshake ({type(exc).__name__}: "
            f"{exc}); install boonb {version('boonb')} with its dask extra on the workers"
        ) from None
    mine = version("boonb")
    if hello.get("boonb") != mine or hello.get("wire") != wire.WIRE_VERSION:
        raise ExecutorUnavailable(
            f"the Dask worker {address} runs boonb {hello.get('boonb')} (wire "
            f"{hello.get('wire')}), this kernel boonb {mine} (wire "
            f"{wire.WIRE_VERSION}); install the same boonb on the workers"
        )
