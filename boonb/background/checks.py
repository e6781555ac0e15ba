"""Why a new task cannot run: a spawn too deep or naming unknown tools, a retry not allowed."""

from __future__ import annotations

import uuid

from boonb.agent.tools.registry import ToolRegistry
from boonb.background.errors import InvalidTask, SpawnRefused, TaskStateError
from boonb.background.models import RETRYABLE, TERMINAL, TaskPayload
from boonb.background.records import shown_state
from boonb.frames import TaskUpdate


def check_depth(depth: int, max_depth: int) -> None:
    """:class:`SpawnRefused` if a subagent ``depth`` levels deep is past ``max_depth``."""
    if depth > max_depth:
        raise SpawnRefused(
            f"cannot spawn a subagent here: that would be {depth} levels deep and the "
            f"limit is {max_depth}. Do the work yourself, or return and let the "
            "agent above you spawn it."
        )


def check_tools(payload: TaskPayload, tools: ToolRegistry) -> None:
    """:class:`InvalidTask` if ``payload`` names tools that ``tools`` (the kernel's) lacks."""
    unknown = [name for name in payload.tools or () if name not in tools]
    if unknown:
        known = ", ".join(tools.names()) or "none"
        raise InvalidTask(
            f"unknown tool{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
            f"the tools a subagent can get: {known}"
        )


def check_retryable(old: TaskUpdate) -> None:
    """:class:`TaskStateError` unless ``old`` failed, was cancelled or was interrupted."""
    if old.state not in RETRYABLE:
        raise TaskStateError(
            f"task {old.task_id} is {shown_state(old.state)}; only a failed, cancelled or "
            "interrupted task can be retried"
            + ("" if old.state in TERMINAL else f" (cancel it first: cancel {old.task_id})")
        )


def check_not_retried(old: TaskUpdate, *, again: bool, newer: uuid.UUID | None) -> None:
    """:class:`TaskStateError` if ``old`` was retried already (``again``, or as ``newer``)."""
    if again or newer is not None:
        shown = "" if newer is None else f" as task {newer}"
        raise TaskStateError(
            f"task {old.task_id} was already retried{shown}; look at the new attempt "
            "with %tasks list (retry that one if it failed too)"
        )
