"""A task this kernel owns, as the service and the worker share it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from dataclasses import dataclass, field

from boonb.agent.recorder import TraceParent
from boonb.background.models import TaskPayload, TaskResult
from boonb.frames import TaskUpdate


@dataclass
class LiveTask:
    """A task this kernel owns: its latest frame and what running it needs."""

    update: TaskUpdate
    payload: TaskPayload
    parent: TraceParent | None
    parent_chat_id: uuid.UUID | None
    done: concurrent.futures.Future[TaskUpdate] = field(default_factory=concurrent.futures.Future)
    """Settles with the final frame once the task has ended."""
    runner: asyncio.Task[None] | None = None
    result: TaskResult | None = None
    cancel_asked: bool = False
