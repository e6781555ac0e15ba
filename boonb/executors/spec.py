"""What an executor is asked to run, and what it says about itself.

An ``AgentRunSpec`` may cross a process boundary (to a Dask worker), so it holds only
plain data: tool names rather than tools, image references rather than bytes, and no
provider settings (the executor adds those per call, keys as secrets, never stored).
"""

from __future__ import annotations

import uuid
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from boonb.agent.loop import DEFAULT_SYSTEM_PROMPT, AgentResult
from boonb.attachments import AttachmentRef
from boonb.providers.profiles import Profile


class AgentRunSpec(BaseModel):
    """One agent run: a new chat, its prompt, and where it hangs in the trace tree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chat_id: uuid.UUID = Field(
        description="Allocated by the caller, so its step or task knows it at once."
    )
    prompt: str
    images: tuple[AttachmentRef, ...] = ()
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    model: str | None = None
    tools: tuple[str, ...] | None = Field(
        default=None, description="Registered tool names; None means every registered tool."
    )
    budget: int | None = None
    max_turns: int = 10
    agent_id: str | None = None
    workflow_run_id: uuid.UUID | None = None
    parent_trace_id: uuid.UUID | None = None
    parent_root_id: uuid.UUID | None = None


class ProviderWire(BaseModel):
    """The provider a remote agent calls, sent with each run and never stored or logged.

    The key is a ``SecretStr``: a debug log of the message that carries it prints stars.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    profile: Profile
    model: str
    api_key: SecretStr | None = None
    tool_output_max_chars: int


class ExecutorStatus(BaseModel):
    """What ``%boonb`` shows about the executor."""

    model_config = ConfigDict(frozen=True)

    name: Literal["local", "dask"]
    address: str | None = None
    workers: tuple[str, ...] = ()
    running: int = 0
    problem: str | None = Field(default=None, description="Why it cannot take agents now.")


class Executor(Protocol):
    """Runs agents for background tasks and workflow steps (DESIGN section 1, ``executors``)."""

    name: Literal["local", "dask"]

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        """Run ``spec`` to its end on the engine loop's caller.

        Every frame and row of the run has reached this kernel's bus and writer before it
        returns. Cancelling the awaiting task cancels the agent; ``CancelledError`` is raised
        after its traces are closed as cancelled. A model failure raises ``AgentError`` as a
        local run does; a lost worker raises ``WorkerLost``.
        """
        ...

    def describe(self) -> ExecutorStatus: ...

    def provider_of(self, chat_id: uuid.UUID) -> str | None:
        """The provider a chat it ran remotely used; None for chats the kernel holds."""
        ...

    async def aclose(self) -> None: ...
