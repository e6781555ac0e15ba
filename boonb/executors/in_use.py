"""An executor as the runtime hands it out, knowing the runs in flight on it.

The runtime may replace its executor at any time (``use_executor``, ``%boonb config
executor=...``); agents already running on the old one must not be cut off, and at
shutdown their callers must record how they ended before the executor goes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Literal

from boonb.agent.loop import AgentResult
from boonb.executors.spec import AgentRunSpec, Executor, ExecutorStatus

log = logging.getLogger("boonb")


class InUse:
    """An executor as the runtime hands it out: it knows the runs in flight on it.

    So one that is replaced (``use_executor``, a settings change) is closed only after
    its last run has ended, and at shutdown the runs' callers are interrupted before it
    closes. Its state is touched on the engine thread only.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.name: Literal["local", "dask"] = executor.name
        self._callers: list[asyncio.Task[Any]] = []
        self._retired = False
        self._closing: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closing is not None and self._closing.done()

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        caller = asyncio.current_task()
        assert caller is not None  # awaited in a task, on the engine
        self._callers.append(caller)
        try:
            return await self.executor.run_agent(spec)
        finally:
            self._callers.remove(caller)
            if self._retired and not self._callers:
                self.close()

    def describe(self) -> ExecutorStatus:
        return self.executor.describe()

    def provider_of(self, chat_id: uuid.UUID) -> str | None:
        return self.executor.provider_of(chat_id)

    async def aclose(self) -> None:
        await self.close()

    async def retire(self) -> None:
        """No new runs come: close once the last one running has ended (or now)."""
        self._retired = True
        if not self._callers:
            await self.close()

    async def interrupt(self, timeout: float) -> None:
        """Cancel the callers of the runs in flight and wait (at most ``timeout``) for them."""
        callers = list(self._callers)
        for caller in callers:
            caller.cancel()
        if callers:
            await asyncio.wait(callers, timeout=timeout)

    def close(self) -> asyncio.Task[None]:
        """Close the executor once (a task on the engine; a failure is logged)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.executor.aclose())
            self._closing.add_done_callback(self._closed)
        return self._closing

    def _closed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "boonb: closing the %s executor failed",
                self.name,
                exc_info=task.exception(),
            )
