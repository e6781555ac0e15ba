"""The actors of this kernel on a Dask cluster's workers (:class:`Pool`); no Dask import here.

The pool lists the workers, starts an actor on each new one (in the background once some
take runs), leaves out those that cannot be used (no boonb, another version, not reachable,
frozen) while the others take runs, pings the actors, and picks the least busy one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from boonb.config import Settings
from boonb.errors import ExecutorUnavailable
from boonb.executors.dask_hosts import ACTOR_GONE, CALL_TIMEOUT_S, Host, NotSent

log = logging.getLogger("boonb.executors.dask")

REFRESH_S = 5.0
"""How often the workers are listed again (new ones get an actor, gone ones are dropped)."""
REFUSED_RECHECK_S = 60.0
"""How long a worker left out (no boonb, another version, unreachable) stays left out."""
MISSED_BEATS = 2
"""Heartbeats a worker may miss before its runs are failed as lost (a frozen worker)."""


class Pool:
    """The actors of one kernel on one cluster, by worker address (see the module).

    ``identity`` asks the scheduler for its workers; ``start`` makes and checks an actor
    on one (raising ``ExecutorUnavailable`` saying why it cannot be used).
    """

    def __init__(
        self,
        *,
        address: str,
        topic: str,
        identity: Callable[[], Awaitable[dict[str, Any]]],
        start: Callable[[str], Awaitable[Host]],
        settings: Callable[[], Settings],
    ) -> None:
        self.address = address
        self.topic = topic
        self._identity = identity
        self._start = start
        self._settings = settings
        self.hosts: dict[str, Host] = {}
        self.refused: dict[str, tuple[str, float]] = {}
        """Workers left out, by address: why, and since when (see ``REFUSED_RECHECK_S``)."""
        self._starting: set[str] = set()
        self.background: set[asyncio.Task[None]] = set()
        """Actors being started while others take runs."""
        self._listed_at = 0.0
        self._lock = asyncio.Lock()
        self._freed = asyncio.Condition()
        self.problem: str | None = None
        self.closed = False

    async def release(self) -> None:
        """A run ended: one waiting for room on a full worker may go."""
        async with self._freed:
            self._freed.notify()

    async def refresh(self, *, force: bool = False) -> None:
        """Give each new worker an actor, drop gone ones; at most every ``REFRESH_S``.

        New workers are started in the background when some already take runs: a worker
        that does not answer must not hold up the runs of those that do.
        """
        async with self._lock:
            if not force and time.monotonic() - self._listed_at < REFRESH_S and self.hosts:
                return
            identity = await asyncio.wait_for(self._identity(), CALL_TIMEOUT_S)
            workers = sorted(identity.get("workers", {}))
            for address in set(self.hosts) - set(workers):
                self.lose(self.hosts[address], "left the cluster")
            for address in set(self.refused) - set(workers):
                del self.refused[address]
            now = time.monotonic()
            new = [a for a in workers if self._may_start(a, now)]
            if new:
                self._starting.update(new)
                starting = asyncio.ensure_future(self._start_hosts(new))
                if self.hosts:
                    self.background.add(starting)
                    starting.add_done_callback(self.background.discard)
                else:
                    await starting
            if not self.hosts and self.background:  # the only workers are starting
                await asyncio.wait(list(self.background), timeout=2 * CALL_TIMEOUT_S)
            self._listed_at = time.monotonic()
            self.problem = self._left_out()
            if not self.hosts:
                self.problem = self.no_workers()
                raise ExecutorUnavailable(self.problem)

    def _may_start(self, address: str, now: float) -> bool:
        if address in self.hosts or address in self._starting:
            return False
        refused = self.refused.get(address)
        return refused is None or now - refused[1] >= REFUSED_RECHECK_S

    async def _start_hosts(self, addresses: list[str]) -> None:
        try:
            started = await asyncio.gather(
                *(self._start(a) for a in addresses), return_exceptions=True
            )
        finally:
            self._starting.difference_update(addresses)
        for address, host in zip(addresses, started, strict=True):
            if isinstance(host, Host):
                self.hosts[address] = host
                self.refused.pop(address, None)
            else:
                why = str(host) if isinstance(host, ExecutorUnavailable) else repr(host)
                self._refuse(address, why)
        self.problem = self._left_out() if self.hosts else self.no_workers()
        async with self._freed:  # runs waiting for room may take a new worker
            self._freed.notify_all()

    def _refuse(self, address: str, why: str) -> None:
        """Leave a worker out for a while; the others go on taking runs."""
        self.refused[address] = (why, time.monotonic())
        log.warning("dask: left out worker %s: %s", address, why)

    def _left_out(self) -> str | None:
        if not self.refused:
            return None
        listed = "; ".join(why for why, _ in self.refused.values())
        return f"{len(self.refused)} worker(s) left out, the others take runs: {listed}"

    def no_workers(self) -> str:
        if self.refused:
            listed = "; ".join(why for why, _ in self.refused.values())
            return f"no worker of the Dask cluster at {self.address} can run agents: {listed}"
        return (
            f"the Dask cluster at {self.address} has no workers; start some "
            f"(dask worker {self.address}), or %boonb config executor=local"
        )

    def lose(self, host: Host, why: str, *, quiet: bool = False) -> None:
        """Forget a worker's actor; its runs in flight fail as lost (they wait on ``lost``)."""
        if self.hosts.get(host.address) is host:
            del self.hosts[host.address]
        host.drop(why, quiet=quiet)

    async def heartbeat(self) -> None:
        """Ping each actor: renews this kernel's lease there, and finds frozen workers."""
        while not self.closed:
            period = self._settings().dask_heartbeat_s
            await asyncio.sleep(period)
            hosts = list(self.hosts.values())
            try:
                await asyncio.gather(*(self._ping(h, period) for h in hosts))
            except Exception:  # never let the heartbeat die silently: runs would go unwatched
                log.exception("dask: the heartbeat to the workers failed")

    async def _ping(self, host: Host, period: float) -> None:
        try:
            await asyncio.wait_for(host.call("ping", self.topic), period)
        except TimeoutError:  # before OSError, which it derives from
            host.missed += 1
            if host.missed >= MISSED_BEATS:
                why = f"stopped answering ({host.missed} heartbeats missed)"
                self.lose(host, why)
                # Not started again at once: a frozen worker stays listed for minutes.
                self._refuse(host.address, f"the Dask worker {host.address} {why}")
            return
        except (OSError, RuntimeError, NotSent):
            self.lose(host, "died")
            return
        host.missed = 0

    async def pick(self) -> Host:
        """The worker with the fewest runs of this kernel, waiting while all are full."""
        for host in list(self.hosts.values()):
            if not host.usable():  # e.g. after the scheduler connection dropped
                self.lose(host, ACTOR_GONE)
        try:
            await self.refresh()
        except (OSError, RuntimeError) as exc:  # TimeoutError is an OSError
            raise ExecutorUnavailable(
                f"cannot list the Dask cluster's workers at {self.address} ({exc!r}); "
                "check the scheduler, or %boonb config executor=local"
            ) from None
        limit = self._settings().dask_agents_per_worker
        async with self._freed:
            while True:
                if not self.hosts:
                    await self.refresh(force=True)
                host = min(self.hosts.values(), key=lambda h: len(h.running))
                if len(host.running) < limit:
                    return host
                await self._freed.wait()
