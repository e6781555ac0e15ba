"""What a background task is given (its payload) and what it gives back (its result).

Both cross boundaries (the ``tasks`` table, the subagent tools, the tasks pane), so they
are pydantic models; the task as it is now is :class:`boonb.frames.TaskUpdate`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from boonb.attachments import AttachmentRef
from boonb.frames import TaskUpdate

TASK_TYPE = "background_subagent"
MAX_TITLE = 120
SUBAGENT_ID_PREFIX = "task-"
"""Starts the ``agent_id`` of every background subagent (``task-`` and its task id's start)."""

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted", "read"})
"""States a task does not leave (``read`` is ``completed`` whose result was collected)."""
RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})


class TaskPayload(BaseModel):
    """Everything a subagent is started from.

    Kept in the row, so a retry (from any kernel) runs the same work again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Annotated[str, Field(min_length=1)]
    images: list[AttachmentRef] = Field(default_factory=list)
    """Images sent with the prompt, as stored references (the row never holds their bytes)."""
    model: str | None = None
    """None: the kernel's configured model."""
    tools: list[str] | None = None
    """Tool names; None: every tool of the kernel except the subagent tools (a subagent only
    spawns subagents when given ``spawn_subagent`` by name)."""
    budget: Annotated[int, Field(ge=1)] | None = None
    """Token budget of the subagent's run (input plus output tokens)."""
    max_turns: Annotated[int, Field(ge=1, le=100)] = 10
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    """Free-form; ``metadata["name"]`` is the task's title when given."""
    depth: Annotated[int, Field(ge=1)] = 1
    """1 for a task spawned by a top-level agent or the notebook, 2 for its subagents' ..."""

    def title(self) -> str:
        """The metadata's name, or the prompt's first line."""
        name = self.metadata.get("name")
        text = name if isinstance(name, str) and name.strip() else self.prompt.strip()
        first = text.strip().splitlines()[0] if text.strip() else "(empty prompt)"
        return first if len(first) <= MAX_TITLE else first[: MAX_TITLE - 1] + "…"


class TaskSummary(BaseModel):
    """What a finished subagent did.

    Token convention as everywhere in boonb: ``tokens_used = input_tokens + output_tokens``,
    cache-read tokens counted inside the input.
    """

    model_config = ConfigDict(frozen=True)

    turns: int = 0
    """Model calls (turns) of its run."""
    tool_calls: int = 0
    """Tool calls it made, failed ones included."""
    tool_errors: int = 0
    tokens_used: int = 0
    cost_usd: float | None = None
    wall_time_s: float = 0.0
    stop_reason: Literal["final", "max_turns", "budget", "cancelled", "error"] = "final"


class TaskResult(BaseModel):
    """A completed task's result: the subagent's final answer and a summary."""

    model_config = ConfigDict(frozen=True)

    answer: str
    summary: TaskSummary


class TaskOutcome(BaseModel):
    """A task and, once it completed, its result (:meth:`Tasks.result`)."""

    model_config = ConfigDict(frozen=True)

    task: TaskUpdate
    result: TaskResult | None = None

    @property
    def task_id(self) -> uuid.UUID:
        return self.task.task_id

    @property
    def ready(self) -> bool:
        return self.result is not None
