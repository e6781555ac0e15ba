"""What the workflow manager answers the views, REST and magics with (pydantic, JSON-ready).

The orchestrator view and ``GET /boonb/api/orchestrator/...`` use these: the workflows a
project can run with their arguments (:class:`WorkflowInfo`), an argument check that
runs nothing (:class:`ArgsCheck`), and where a run stands (:class:`RunStatus`). One
run's whole pane is :class:`boonb.store.workflow_runs.RunDetail`, and a page of the
runs list :class:`boonb.store.workflow_runs.RunPage`, from memory or the store alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, JsonValue

from boonb.errors import WorkflowError
from boonb.frames import WorkflowState
from boonb.workflow.discovery import ArgType, Source, WorkflowArgsError, WorkflowSpec

MAX_BUDGET = 10**9
"""The largest token budget a run takes: ``workflow_runs.budget`` is a 32-bit INTEGER, and a
larger one would lose the run's row (a billion tokens is far beyond any real run)."""


class ArgInfo(BaseModel):
    """One declared argument of a workflow, as a form shows it."""

    name: str
    type: ArgType
    """The JSON type its value must have: string, integer, number, boolean, array or object."""
    description: str
    default: JsonValue
    """The value used when it is not given (None when it has no default)."""
    required: bool
    """True when it must be given: declared so, or declared without a default."""


class WorkflowInfo(BaseModel):
    """One discovered workflow as ``%workflow list``, the selector and REST show it."""

    name: str
    description: str
    source: Source
    """Where it was found: ``project`` (``.boocode/workflows``), ``user`` (``~/.boocode``)
    or ``builtin`` (the catalog shipped with boonb)."""
    path: str
    args: list[ArgInfo]
    """Its arguments in declaration order."""
    args_schema: dict[str, JsonValue]
    """The same arguments as a JSON schema (an object schema), for a JSON editor."""
    timeout: float | None = None
    """Seconds a run may take, when the workflow declares it."""


class ArgError(BaseModel):
    """One problem with the arguments given to a workflow."""

    arg: str | None
    """The argument it is about (the top-level name); None for the arguments as a whole."""
    message: str
    """What is wrong and what to give instead, e.g. ``required: give a string``."""


class ArgsCheck(BaseModel):
    """The manager's verdict on a workflow's arguments, given without running anything."""

    workflow: str
    ok: bool
    values: dict[str, JsonValue] | None
    """The arguments a run would get (defaults filled in) when ``ok``, else None."""
    errors: list[ArgError]
    """Every problem found, at most one per argument; empty when ``ok``."""


class RunStatus(BaseModel):
    """Where a run stands; ``result`` once it completed."""

    run_id: uuid.UUID
    workflow: str
    state: WorkflowState
    phase: str | None = None
    agents_done: int = 0
    """Agents that ended, cached ones included."""
    agents_total: int = 0
    agents_run: int = 0
    """Agents actually dispatched (not answered from the cache)."""
    agents_cached: int = 0
    """Agents answered from the result cache; counted in ``agents_done``."""
    agents_failed: int = 0
    tokens_used: int = 0
    """Input plus output tokens of the run's model calls (the project's convention)."""
    budget: int | None = None
    result: JsonValue = None
    error: str | None = None
    violation: str | None = None
    """What the sandbox refused, when it stopped the script."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


def workflow_info(spec: WorkflowSpec) -> WorkflowInfo:
    """What the views and REST show of a discovered workflow."""
    return WorkflowInfo(
        name=spec.name,
        description=spec.description,
        source=spec.source,
        path=str(spec.path),
        args=[
            ArgInfo(
                name=name,
                type=arg.type,
                description=arg.description,
                default=arg.default,
                required=arg.is_required,
            )
            for name, arg in spec.args.items()
        ],
        args_schema=spec.args_schema(),
        timeout=spec.timeout,
    )


def workflow_infos(workflows: Mapping[str, WorkflowSpec]) -> list[WorkflowInfo]:
    """What the views and REST show of every discovered workflow, by name."""
    return [workflow_info(workflows[name]) for name in sorted(workflows)]


class UnknownWorkflow(WorkflowError, LookupError):
    """No discovered workflow has that name."""


def find_workflow(workflows: Mapping[str, WorkflowSpec], name: str) -> WorkflowSpec:
    """The discovered workflow ``name``; :class:`UnknownWorkflow` naming those known."""
    if name not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise UnknownWorkflow(
            f"no workflow named {name!r}; known: {known} (%workflow list --refresh rescans)"
        )
    return workflows[name]


def check_args(spec: WorkflowSpec, args: dict[str, Any] | None) -> ArgsCheck:
    """Check arguments as a run would, running nothing: every problem, per argument.

    The kernel's manager and the server's orchestrator panel both answer a form with it.
    """
    try:
        values = spec.validate_args(args)
    except WorkflowArgsError as exc:
        errors = [ArgError(arg=name, message=text) for name, text in exc.problems.items()]
        return ArgsCheck(workflow=spec.name, ok=False, values=None, errors=errors)
    return ArgsCheck(workflow=spec.name, ok=True, values=values, errors=[])
