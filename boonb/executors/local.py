"""The local executor: agents run on this kernel's engine loop, as they always have.

It is the default (``executor=local``) and what a Dask executor is checked against: the
same spec gives the same frames, rows and result on both.
"""

from __future__ import annotations

import uuid
from typing import Literal

from boonb.agent.factory import AgentFactory
from boonb.agent.loop import AgentResult
from boonb.executors.spec import AgentRunSpec, ExecutorStatus


class LocalExecutor:
    """Runs each spec's agent in this kernel, built by the kernel's factory."""

    name: Literal["local", "dask"] = "local"

    def __init__(self, factory: AgentFactory) -> None:
        self.factory = factory

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        """Build the spec's agent and run it here; a cancel of the caller cancels it."""
        agent = self.factory.from_spec(spec)
        return await agent.run(spec.prompt, images=list(spec.images))

    def describe(self) -> ExecutorStatus:
        return ExecutorStatus(name="local")

    def provider_of(self, chat_id: uuid.UUID) -> str | None:
        """None: a local chat's live agent, in the kernel's chats, knows its provider."""
        return None

    async def aclose(self) -> None:
        """Nothing to release: the agents it ran belong to the kernel."""
