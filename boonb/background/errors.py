"""Errors of background tasks; each message says what to do next.

They are ``BoonbError``s under ``TaskError``; the subagent tools turn them into tool
errors the model reads.
"""

from __future__ import annotations

from boonb.errors import BoonbError


class TaskError(BoonbError):
    """Base class of every error about background tasks."""


class InvalidTask(TaskError, ValueError):
    """A task cannot be spawned as asked (empty prompt, unknown tool, bad budget, ...)."""


class UnknownTask(TaskError, LookupError):
    """No task of this project has that id (or the id is not an id at all)."""


class NotYourTask(TaskError, PermissionError):
    """An agent asked about a task it did not spawn."""


class SpawnRefused(TaskError):
    """Spawning would go deeper than the depth limit, or the caller may not spawn."""


class TaskStateError(TaskError):
    """The task is not in a state that allows this (cancel a finished task, retry a running one)."""


class TaskNotReady(TaskError):
    """The task has not completed yet, so it has no result."""


class TaskFailed(TaskError):
    """The task ended without a result (failed, cancelled or interrupted)."""
