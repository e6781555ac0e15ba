"""``%%workflow`` runs a cell as a workflow script; ``%workflow list|run|status|cancel``."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from IPython.core.magic import Magics, line_cell_magic, magics_class
from pydantic import BeforeValidator, Field, JsonValue

from boonb import api
from boonb.frames import Frame, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.magics.follow import follow
from boonb.magics.lines import (
    MagicLine,
    Option,
    Positional,
    help_text,
    parse_subcommand,
)
from boonb.magics.report import reports_errors
from boonb.runtime import get_runtime
from boonb.workflow.manager import RunStatus, WorkflowInfo

if TYPE_CHECKING:
    from boonb.widgets.orchestrator import RunDisplay

FRAME_TYPES = {"workflow:log", "workflow:step", "workflow:status"}


def render(frame: Frame) -> str | None:
    """One line per event of a run, as the cell shows it while the run goes on."""
    where = ""
    if isinstance(frame, WorkflowLog | WorkflowStep) and frame.phase:
        where = f"[{frame.phase}] "
    match frame:
        case WorkflowLog():
            # Each agent call by its label (``analyst #2``), unique within the run.
            label = frame.label or frame.agent_id
            who = f"{label}: " if label and not frame.message.startswith("cached") else ""
            return f"{where}{who}{frame.message}\n"
        case WorkflowStep(state="started"):
            return f"{where}▶ {frame.label or frame.agent_id}\n"
        case WorkflowStep(state="completed"):
            return f"{where}✓ {frame.label or frame.agent_id} ({frame.tokens_used:,} tokens)\n"
        case WorkflowStep(state="failed"):
            return f"{where}✗ {frame.label or frame.agent_id}: {frame.error}\n"
        case _:
            return None


def summary(status: RunStatus, seconds: float) -> str:
    cached = status.agents_done - status.agents_run
    parts = [
        status.state,
        f"{status.agents_done}/{status.agents_total} agents"
        + (f" ({cached} cached)" if cached > 0 else ""),
        f"{status.tokens_used:,} tokens" + (f" of {status.budget:,}" if status.budget else ""),
        f"{seconds:.1f} s",
        f"run {status.run_id}",
    ]
    return " · ".join(parts)


def _follow_run(run_id: uuid.UUID, shell: Any) -> Any:
    """Wait for the run on the cell's thread; its result is the cell's value.

    In a kernel the run's pane (an ``Orchestrator`` in run mode) is the cell's output,
    live, and once the run ends it is published again so the notebook's saved fallback
    shows the finished run. Terminal IPython gets the run's events as lines of text.
    """
    manager = get_runtime().workflows
    began = time.perf_counter()
    shown = _show_run(shell, run_id)

    def mine(frame: Frame) -> bool:
        return isinstance(frame, WorkflowLog | WorkflowStep | WorkflowStatus) and (
            frame.run_id == run_id
        )

    try:
        if shown is None:
            status = follow(manager.future(run_id), types=FRAME_TYPES, accept=mine, render=render)
        else:
            status = get_runtime().engine.wait(manager.future(run_id))
    except KeyboardInterrupt:
        print(f"boonb: workflow run {run_id} cancelled", file=sys.stderr)
        return None
    finally:
        api.wait_stored()  # the cell ends once the run's rows are on disk
        if shown is not None:
            shown.cell_returned()
    print(summary(status, time.perf_counter() - began))
    if status.state != "completed":
        print(f"boonb: {status.error or status.state}", file=sys.stderr)
        return None
    return status.result


def _show_run(shell: Any, run_id: uuid.UUID) -> RunDisplay | None:
    """Display the run's pane, in a kernel only (terminal IPython has no widgets)."""
    if getattr(shell, "kernel", None) is None:
        return None
    from boonb.widgets.orchestrator import display_run

    return display_run(run_id, blocking=True)


def _show_orchestrator(shell: Any) -> Any:
    """The orchestrator in a kernel; its text (workflows, recent runs) in terminal IPython."""
    from boonb.widgets.orchestrator import Orchestrator

    pane = Orchestrator()
    if getattr(shell, "kernel", None) is None:
        text, _ = pane.static()
        pane.close()
        print(text)
        return None
    return pane


def _json_object(value: object) -> object:
    """``--args`` as typed (a JSON text) read into the object it must be."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--args is not valid JSON ({exc.msg}): {value!r}; "
            'write a JSON object, e.g. --args {"topic": "duckdb"}'
        ) from None
    if not isinstance(parsed, dict):
        raise ValueError('--args must be a JSON object, e.g. --args {"topic": "duckdb"}')
    return parsed


RUN_ARGS_HELP = 'the run\'s arguments (the script\'s `args`), a JSON object: {"topic": "duckdb"}'
RunArgs = Annotated[
    dict[str, JsonValue], BeforeValidator(_json_object), Option(RUN_ARGS_HELP, "JSON")
]
Budget = Annotated[int | None, Field(gt=0), Option("token budget of the run", "N")]
Timeout = Annotated[float | None, Field(gt=0), Option("seconds the run may take", "S")]
NoWait = Annotated[bool, Option("return the run id at once")]


class WorkflowCell(MagicLine):
    """``%%workflow [options]``: the options of a cell run as a workflow script."""

    command: ClassVar[str] = "%%workflow"

    args: RunArgs = {}
    budget: Budget = None
    timeout: Timeout = None
    no_wait: NoWait = False


class WorkflowList(MagicLine):
    """``%workflow list [--refresh]``: the workflows found in the catalog and the project."""

    command: ClassVar[str] = "%workflow list"

    refresh: Annotated[bool, Option("look for workflow files again first")] = False


class WorkflowRunLine(MagicLine):
    """``%workflow run NAME [options]``: run a discovered workflow."""

    command: ClassVar[str] = "%workflow run"

    name: Annotated[str, Positional("NAME", "the workflow (see %workflow list)")]
    args: RunArgs = {}
    budget: Budget = None
    timeout: Timeout = None
    no_wait: NoWait = False


class WorkflowStatusLine(MagicLine):
    """``%workflow status RUN``: where a run is, its steps, last log lines and result."""

    command: ClassVar[str] = "%workflow status"

    run: Annotated[str, Positional("RUN", "the run id (printed by --no-wait)")]


class WorkflowCancel(MagicLine):
    """``%workflow cancel RUN``: stop a run."""

    command: ClassVar[str] = "%workflow cancel"

    run: Annotated[str, Positional("RUN")]


WORKFLOW_COMMANDS: dict[str, type[MagicLine]] = {
    "list": WorkflowList,
    "run": WorkflowRunLine,
    "status": WorkflowStatusLine,
    "cancel": WorkflowCancel,
}
WORKFLOW_HELP = help_text(
    "Run the cell as a workflow script, or list, run, watch and cancel discovered workflows; "
    "with no subcommand, show the orchestrator (pick, fill in, run, watch).",
    WorkflowCell,
    *WORKFLOW_COMMANDS.values(),
)


@magics_class
class WorkflowMagics(Magics):
    """The ``%%workflow`` and ``%workflow`` magics: scripts, and the workflow catalog."""

    @line_cell_magic
    @reports_errors
    def workflow(self, line: str, cell: str | None = None) -> Any:
        manager = get_runtime().workflows
        if cell is not None:
            options = WorkflowCell.parse(line)
            run_id = manager.run_script(
                cell, options.args, budget=options.budget, timeout=options.timeout
            )
            return run_id if options.no_wait else _follow_run(run_id, self.shell)
        if not line.strip():
            return _show_orchestrator(self.shell)
        match parse_subcommand(line, WORKFLOW_COMMANDS, others=[WorkflowCell]):
            case WorkflowList(refresh=refresh):
                print(list_text(manager.list(refresh=refresh)))
                return None
            case WorkflowRunLine() as given:
                run_id = manager.run(
                    given.name, given.args, budget=given.budget, timeout=given.timeout
                )
                return run_id if given.no_wait else _follow_run(run_id, self.shell)
            case WorkflowStatusLine(run=run):
                # Shown as its summary (its repr): a cell ending in it prints it, and
                # ``x = %workflow status RUN`` keeps the data (``x.detail``).
                return manager.report(run)
            case WorkflowCancel(run=run):
                stopped = manager.cancel(run)
                print(f"cancelling run {run}" if stopped else f"run {run} is not running")
                return None
            case other:  # a command in the table without a case here: a bug
                raise AssertionError(f"no case for {other!r}")

    workflow.__doc__ = WORKFLOW_HELP


def list_text(found: list[WorkflowInfo]) -> str:
    """The table of ``%workflow list``: name, where it was found, what it does."""
    if not found:
        return "no workflows found"
    width = max(len(w.name) for w in found)
    return "\n".join(f"{i.name:<{width}}  {i.source:8}  {i.description}" for i in found)
