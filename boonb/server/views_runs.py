"""The orchestrator in a side panel: workflows, runs and a run's pane, from the database.

Answers are the cell orchestrator's messages (``boonb.widgets.orchestrator_protocol``).
The server runs no workflow: Run and Re-run answer the view's error with the notebook
command that starts it; Cancel is recorded for the kernel running the run. Frames are the
``workflow:status``, ``workflow:step`` and ``workflow:log`` frames a cell's widget would
have pushed, batched in one ``RunFramesMessage`` per poll: of the run shown, or (the
orchestrator) of every run that runs now or ran at the previous poll.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, assert_never

from pydantic import BaseModel, JsonValue, ValidationError

from boonb.server.orchestrator import RunNotFound
from boonb.store import Database, InvalidQuery, WorkflowRunStore
from boonb.store import requests_from_server as requests
from boonb.store.project_lists import interrupt_dead_runs
from boonb.store.view_changes import RunNow, active_runs, latest_run_created, run_now
from boonb.widgets.orchestrator_protocol import (
    AgentTracesReply,
    AgentTracesRequest,
    OpenReply,
    OpenRequest,
    RerunRequest,
    RunCancelReply,
    RunCancelRequest,
    RunFrame,
    RunFramesMessage,
    RunRequest,
    RunsReply,
    RunsRequest,
    ValidateReply,
    ValidateRequest,
    WorkflowsReply,
    WorkflowsRequest,
    parse_orchestrator_request,
)
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.workflow.discovery import default_sources, discover
from boonb.workflow.models import (
    UnknownWorkflow,
    WorkflowInfo,
    check_args,
    find_workflow,
    workflow_infos,
)

SERVER_SESSION = ""
"""A runs page's ``session_id``: the server runs none (every run's frames come by polling)."""

ACTIVE = ("pending", "running")


def answer(db: Database | None, project: Path, path: Path, content: JsonValue) -> list[BaseModel]:
    """The cell orchestrator's reply to one request, read from (or recorded in) the database."""
    try:
        request = parse_orchestrator_request(content)
    except ValidationError as exc:
        return [ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))]
    rid = request.request_id
    try:
        match request:
            case WorkflowsRequest():
                return [WorkflowsReply(request_id=rid, workflows=_workflows(project))]
            case ValidateRequest():
                return [_validate(project, request)]
            case RunRequest():
                return [ErrorReply(request_id=rid, message=_needs_kernel(request.workflow))]
            case RerunRequest():
                found = None if db is None else WorkflowRunStore(db).summary(request.run_id)
                name = "NAME" if found is None else found.workflow
                return [ErrorReply(request_id=rid, message=_needs_kernel(name, again=True))]
            case RunCancelRequest():
                requests.cancel_run(_existing(db, path), str(request.run_id))
                # Recorded: the kernel running it stops it at its next poll.
                return [RunCancelReply(request_id=rid, run_id=request.run_id, stopped=True)]
            case RunsRequest():
                return [_runs(db, request)]
            case OpenRequest():
                detail = _detail(db, path, request.run_id)
                return [OpenReply(request_id=rid, run=detail, now=datetime.now(UTC))]
            case AgentTracesRequest():
                # The panel's host renders a trace viewer of a chat id (lab/rest.ts).
                return [
                    AgentTracesReply(
                        request_id=rid, chat_id=request.chat_id, widget=str(request.chat_id)
                    )
                ]
            case _:
                assert_never(request)
    except (requests.NotStored, requests.RequestRefused, RunNotFound, InvalidQuery) as exc:
        return [ErrorReply(request_id=rid, message=str(exc))]


def _needs_kernel(workflow: str, *, again: bool = False) -> str:
    what = "Running a workflow again" if again else "Starting a workflow"
    return (
        f"{what} needs a kernel: run `%workflow run {workflow}` in a notebook of this "
        "project (the side panel shows runs; it does not start them)"
    )


def _workflows(project: Path) -> list[WorkflowInfo]:
    return workflow_infos(discover(default_sources(project)).workflows)


def _validate(project: Path, request: ValidateRequest) -> ValidateReply | ErrorReply:
    """The manager's check of a form's arguments, as a kernel gives it (nothing runs)."""
    workflows = discover(default_sources(project)).workflows
    try:
        spec = find_workflow(workflows, request.workflow)
    except UnknownWorkflow as exc:
        return ErrorReply(request_id=request.request_id, message=str(exc))
    return ValidateReply(request_id=request.request_id, check=check_args(spec, request.args))


def _runs(db: Database | None, request: RunsRequest) -> RunsReply:
    runs, next_cursor = [], None
    if db is not None:
        interrupt_dead_runs(db)
        page = WorkflowRunStore(db).page(request.cursor, request.limit)
        runs, next_cursor = page.runs, page.next_cursor
    elif request.cursor is not None:
        raise requests.NotStored("no run is stored in this project yet; start from the first page")
    return RunsReply(
        request_id=request.request_id,
        runs=runs,
        next_cursor=next_cursor,
        session_id=SERVER_SESSION,
        now=datetime.now(UTC),
        appended=request.cursor is not None,
    )


def _detail(db: Database | None, path: Path, run: uuid.UUID) -> Any:
    db = _existing(db, path)
    interrupt_dead_runs(db)
    found = WorkflowRunStore(db).detail(run)
    if found is None:
        raise RunNotFound(
            f"no workflow run {run} is stored in {path}; take run ids from the runs list"
        )
    return found


def _existing(db: Database | None, path: Path) -> Database:
    if db is None:
        raise requests.NotStored(
            f"nothing is stored in {path} yet: no kernel of this project has run a workflow"
        )
    return db


# Frames.


MAX_NEW_RUNS = 20
"""Runs a poll starts watching at most; the next poll takes the rest (and answers live)."""


def frames(
    db: Database | None, path: Path, run_id: uuid.UUID | None, state: dict[str, Any] | None
) -> tuple[list[BaseModel], dict[str, Any], bool]:
    """The frames of the runs watched since the cursor; the new state; whether to poll on.

    The cursor keeps, per run watched, one digest of its status and one of all its steps,
    and the number of its last log line sent: a few dozen bytes a run, however many steps
    it has. A run stays in it while it runs or has lines not yet sent (a poll sends at
    most ``MAX_CHANGES`` of a run's lines).
    """
    if db is None:
        if run_id is not None:
            raise RunNotFound(f"no workflow run {run_id}: {path} does not exist yet")
        return [], {}, False
    interrupt_dead_runs(db)
    if state is None:  # a panel starts: nothing to send, only where to go on from
        return _start(db, path, run_id)
    seen: dict[str, Any] = dict(state.get("runs") or {})
    created = _time(state.get("c"))
    if run_id is not None:
        watched, created, more = [run_id], None, False
    else:
        watched, created, more = _watched(db, seen, created)
    out: list[RunFrame] = []
    after: dict[str, Any] = {}
    live = more
    for run in watched:
        before = seen.get(str(run))
        mark = before if isinstance(before, dict) else {}
        now = run_now(db, run, logs_after=_int(mark, "l"))
        if now is None:
            if run_id is not None:
                raise RunNotFound(f"no workflow run {run} is stored in {path}")
            continue
        out += _changed(now, mark)
        logs_at = now.logs[-1].seq if now.logs else _int(mark, "l")
        unsent = logs_at < now.last_seq
        running = now.status.state in ACTIVE
        live = live or running or unsent
        if running or unsent or run_id is not None:
            after[str(run)] = _mark(now, logs_at)
    message: list[BaseModel] = [RunFramesMessage(frames=out)] if out else []
    return message, {"runs": after, "c": _micros(created)}, live


def _start(
    db: Database, path: Path, run_id: uuid.UUID | None
) -> tuple[list[BaseModel], dict[str, Any], bool]:
    """Where a panel goes on from: each run watched as it stands now."""
    if run_id is not None:
        runs = [run_id]
    else:
        runs = [run for run, _ in active_runs(db, created_after=None)]
    after: dict[str, Any] = {}
    live = False
    for run in runs:
        now = run_now(db, run, logs_after=0, limit=0)
        if now is None:
            raise RunNotFound(f"no workflow run {run} is stored in {path}")
        live = live or now.status.state in ACTIVE
        after[str(run)] = _mark(now, now.last_seq)
    # With no run yet, any run created from now on is new.
    created = latest_run_created(db) or _EPOCH
    return [], {"runs": after, "c": _micros(created)}, live


def _watched(
    db: Database, seen: dict[str, Any], created: datetime | None
) -> tuple[list[uuid.UUID], datetime | None, bool]:
    """The runs a poll looks at, the new "created after" mark, and whether some wait.

    Those already watched, then up to :data:`MAX_NEW_RUNS` new ones (running now, or
    created since the last poll: one may have started and ended between two polls),
    oldest first; the mark moves only past the new runs taken, so none is skipped.
    """
    runs = _known(seen)
    fresh = [(run, at) for run, at in active_runs(db, created_after=created) if run not in runs]
    taken = fresh[:MAX_NEW_RUNS]
    for _, at in taken:
        created = at if created is None else max(created, at)
    return runs + [run for run, _ in taken], created, len(fresh) > len(taken)


def _changed(now: RunNow, before: dict[str, Any]) -> list[RunFrame]:
    out: list[RunFrame] = []
    if before.get("st") != _digest(now.status):
        out.append(now.status)
    if before.get("p") != _digest(now.steps):
        out += now.steps  # the pane keys steps by trace id: resending one changes nothing
    out += now.logs
    return out


def _mark(now: RunNow, logs_at: int) -> dict[str, Any]:
    return {"st": _digest(now.status), "p": _digest(now.steps), "l": logs_at}


def _known(seen: dict[str, Any]) -> list[uuid.UUID]:
    runs: list[uuid.UUID] = []
    for key in seen:
        try:
            runs.append(uuid.UUID(key))
        except ValueError:
            continue
    return runs


def _int(values: Any, key: str) -> int:
    value = values.get(key) if isinstance(values, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime | None) -> int | None:
    return None if at is None else (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _time(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + timedelta(microseconds=value)
    return None


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:10]
