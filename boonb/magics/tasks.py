"""``%tasks``: the background tasks pane; ``%tasks list|status|result|cancel|retry``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from boonb.background.models import TaskOutcome
from boonb.background.records import shown_state
from boonb.frames import TaskUpdate
from boonb.magics.lines import MagicLine, Positional, help_text, parse_subcommand
from boonb.magics.report import reports_errors
from boonb.runtime import get_runtime
from boonb.widgets.tasks import TasksPane, duration_text, progress_text, static_text

TaskId = Annotated[str, Positional("ID", "the task id, as %tasks list shows it")]


class TasksPaneLine(MagicLine):
    """``%tasks``: the pane of the project's background tasks."""

    command: ClassVar[str] = "%tasks"


class TasksList(MagicLine):
    """``%tasks list``: every task of the project, newest first."""

    command: ClassVar[str] = "%tasks list"


class TasksStatus(MagicLine):
    """``%tasks status ID``: where a task is."""

    command: ClassVar[str] = "%tasks status"

    task: TaskId


class TasksResult(MagicLine):
    """``%tasks result ID``: a completed task's answer and summary."""

    command: ClassVar[str] = "%tasks result"

    task: TaskId


class TasksCancel(MagicLine):
    """``%tasks cancel ID``: stop a pending or running task."""

    command: ClassVar[str] = "%tasks cancel"

    task: TaskId


class TasksRetry(MagicLine):
    """``%tasks retry ID``: run a failed, cancelled or interrupted task again."""

    command: ClassVar[str] = "%tasks retry"

    task: TaskId


TASKS_COMMANDS: dict[str, type[MagicLine]] = {
    "list": TasksList,
    "status": TasksStatus,
    "result": TasksResult,
    "cancel": TasksCancel,
    "retry": TasksRetry,
}
TASKS_HELP = help_text(
    "Show the background tasks pane, or list, inspect, cancel and retry tasks.",
    TasksPaneLine,
    *TASKS_COMMANDS.values(),
)


def status_text(task: TaskUpdate) -> str:
    """A task in a few lines: id, state, title, timing, progress, error."""
    lines = [
        f"task {task.task_id} · {shown_state(task.state)} · attempt {task.attempt}",
        f"  {task.title}",
        f"  {duration_text(task)}",
    ]
    if task.cancel_requested:
        lines.append("  cancelling…")
    if progress := progress_text(task):
        lines.append(f"  {progress}")
    if task.error:
        lines.append(f"  error: {task.error}")
    return "\n".join(lines)


def result_text(outcome: TaskOutcome) -> str:
    """A completed task's summary line, then its answer."""
    result = outcome.result
    if result is None:  # the service raises before this; kept for a clear message anyway
        return status_text(outcome.task)
    s = result.summary
    facts = [f"{s.turns} turns", f"{s.tool_calls} tool calls", f"{s.tokens_used:,} tokens"]
    if s.cost_usd is not None:
        facts.append(f"${s.cost_usd:.4f}")
    return f"{outcome.task.title} · " + " · ".join(facts) + "\n\n" + result.answer


def cancel_text(task: TaskUpdate) -> str:
    """What a cancel did: stopped at once, or asked of the kernel that runs it."""
    if task.state in ("pending", "running"):
        return (
            f"boonb: cancelling task {task.task_id} (it is {task.state}); the kernel that "
            "runs it stops it within a moment: see %tasks status"
        )
    return f"boonb: task {task.task_id} is {shown_state(task.state)}"


@magics_class
class TasksMagics(Magics):
    """The ``%tasks`` magic: background subagents, their pane and their results."""

    @line_magic
    @reports_errors
    def tasks(self, line: str) -> Any:
        if not line.strip():
            display(TasksPane())
            return None
        tasks = get_runtime().tasks
        match parse_subcommand(line, TASKS_COMMANDS, others=[TasksPaneLine]):
            case TasksList():
                print(static_text(list(tasks.list())))
            case TasksStatus(task=task_id):
                print(status_text(tasks.get(task_id)))
            case TasksResult(task=task_id):
                print(result_text(tasks.result(task_id)))
            case TasksCancel(task=task_id):
                print(cancel_text(tasks.cancel(task_id)))
            case TasksRetry(task=task_id):
                task = tasks.retry(task_id)
                print(f"boonb: task {task_id} runs again as task {task.task_id} "
                      f"(attempt {task.attempt}, {shown_state(task.state)})")  # fmt: skip
            case other:
                raise AssertionError(f"unhandled %tasks line {other!r}")
        return None

    tasks.__doc__ = TASKS_HELP
