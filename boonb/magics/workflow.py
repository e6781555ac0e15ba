"""``%%workflow`` runs a cell as a workflow script; ``%workflow list|run|status|cancel``."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from boonb import api
from boonb.frames import Frame, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.magics.follow import follow
from boonb.magics.lines import parse_options, split_line
from boonb.runtime import get_runtime
from boonb.workflow.discovery import WorkflowArgsError
from boonb.workflow.manager import RunStatus, UnknownRun, UnknownWorkflow

LINE_USAGE = (
    "usage: %workflow list [--refresh] | %workflow run NAME [--args JSON] [--budget N] "
    "[--timeout S] [--no-wait] | %workflow status RUN | %workflow cancel RUN"
)
FRAME_TYPES = {"workflow:log", "workflow:step", "workflow:status"}


def render(frame: Frame) -> str | None:
    """One line per event of a run, as the cell shows it while the run goes on."""
    where = ""
    if isinstance(frame, WorkflowLog | WorkflowStep) and frame.phase:
        where = f"[{frame.phase}] "
    match frame:
        case WorkflowLog():
            who = (
                f"{frame.agent_id}: "
                if frame.agent_id and not frame.message.startswith("cached")
                else ""
            )
            return f"{where}{who}{frame.message}\n"
        case WorkflowStep(state="started"):
            return f"{where}▶ {frame.agent_id}\n"
        case WorkflowStep(state="completed"):
            return f"{where}✓ {frame.agent_id} ({frame.tokens_used:,} tokens)\n"
        case WorkflowStep(state="failed"):
            return f"{where}✗ {frame.agent_id}: {frame.error}\n"
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


def _follow_run(run_id: uuid.UUID) -> Any:
    manager = get_runtime().workflows
    began = time.perf_counter()

    def mine(frame: Frame) -> bool:
        return isinstance(frame, WorkflowLog | WorkflowStep | WorkflowStatus) and (
            frame.run_id == run_id
        )

    try:
        status = follow(manager.future(run_id), types=FRAME_TYPES, accept=mine, render=render)
    except KeyboardInterrupt:
        print(f"boonb: workflow run {run_id} cancelled", file=sys.stderr)
        return None
    finally:
        api.wait_stored()  # the cell ends once the run's rows are on disk
    print(summary(status, time.perf_counter() - began))
    if status.state != "completed":
        print(f"boonb: {status.error or status.state}", file=sys.stderr)
        return None
    return status.result


def _args(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowArgsError(f"--args is not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise WorkflowArgsError('--args must be a JSON object, e.g. \'{"topic": "duckdb"}\'')
    return value


@magics_class
class WorkflowMagics(Magics):
    @line_cell_magic
    def workflow(self, line: str, cell: str | None = None) -> Any:
        """``%%workflow`` runs the cell as a script; ``%workflow list|run|status|cancel``."""
        try:
            if cell is not None:
                return self._cell(line, cell)
            return self._line(line)
        except (UnknownWorkflow, UnknownRun, WorkflowArgsError) as exc:
            print(f"boonb: {exc}", file=sys.stderr)
            return None

    @magic_arguments()
    @argument("--args", help="the run's arguments, a JSON object (the script's `args`)")
    @argument("--budget", type=int, help="token budget of the run")
    @argument("--timeout", type=float, help="seconds the run may take")
    @argument("--no-wait", action="store_true", help="return the run id at once")
    def _cell(self, line: str, cell: str) -> Any:
        args = parse_options(self._cell, line)
        run_id = get_runtime().workflows.run_script(
            cell, _args(args.args), budget=args.budget, timeout=args.timeout
        )
        return run_id if args.no_wait else _follow_run(run_id)

    @magic_arguments()
    @argument("name")
    @argument("--args", help="the run's arguments, a JSON object")
    @argument("--budget", type=int, help="token budget of the run")
    @argument("--timeout", type=float, help="seconds the run may take")
    @argument("--no-wait", action="store_true", help="return the run id at once")
    def _run(self, line: str) -> Any:
        args = parse_options(self._run, line)
        run_id = get_runtime().workflows.run(
            args.name, _args(args.args), budget=args.budget, timeout=args.timeout
        )
        return run_id if args.no_wait else _follow_run(run_id)

    def _line(self, line: str) -> Any:
        words = split_line(line)
        manager = get_runtime().workflows
        command, rest = (words[0], words[1:]) if words else ("", [])
        if command == "list" and rest in ([], ["--refresh"]):
            found = manager.list(refresh=bool(rest))
            width = max((len(w.name) for w in found), default=4)
            for info in found:
                print(f"{info.name:<{width}}  {info.source:8}  {info.description}")
            if not found:
                print("no workflows found")
            return None
        if command == "run" and rest:
            return self._run(line.split(None, 1)[1])
        if command == "status" and len(rest) == 1:
            return manager.status(rest[0])
        if command == "cancel" and len(rest) == 1:
            stopped = manager.cancel(rest[0])
            print(f"cancelling run {rest[0]}" if stopped else f"run {rest[0]} is not running")
            return None
        print(LINE_USAGE, file=sys.stderr)
        return None
