"""Background subagents: a task queue, a worker on the engine, the subagent tools.

The queue is the project database's ``tasks`` table (DESIGN section 7b).

:class:`Tasks` is the service (``runtime.tasks`` in a kernel); :func:`subagent_tools`
makes the tools agents call; a task as it is now is a :class:`boonb.frames.TaskUpdate`.
"""

from boonb.background.errors import (
    InvalidTask,
    NotYourTask,
    SpawnRefused,
    TaskError,
    TaskFailed,
    TaskNotReady,
    TaskStateError,
    UnknownTask,
)
from boonb.background.models import (
    RETRYABLE,
    SUBAGENT_ID_PREFIX,
    TASK_TYPE,
    TERMINAL,
    TaskOutcome,
    TaskPayload,
    TaskResult,
    TaskSummary,
)
from boonb.background.service import (
    DEFAULT_MAX_DEPTH,
    SUBAGENT_TOOL_NAMES,
    Tasks,
    parse_task_id,
)
from boonb.background.tools import subagent_tools

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "RETRYABLE",
    "SUBAGENT_ID_PREFIX",
    "SUBAGENT_TOOL_NAMES",
    "TASK_TYPE",
    "TERMINAL",
    "InvalidTask",
    "NotYourTask",
    "SpawnRefused",
    "TaskError",
    "TaskFailed",
    "TaskNotReady",
    "TaskOutcome",
    "TaskPayload",
    "TaskResult",
    "TaskStateError",
    "TaskSummary",
    "Tasks",
    "UnknownTask",
    "parse_task_id",
    "subagent_tools",
]
