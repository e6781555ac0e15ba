"""``Orchestrator``: pick a workflow, fill its arguments, run it and watch it (an anywidget).

Two modes. The orchestrator (``%workflow``): the workflows the manager knows, a form of
the chosen one's arguments checked by the manager before anything runs, Run, the
project's recent runs (all kernels), and the run pane of the run started or opened. The
run pane alone (``mode="run"``, for ``%%workflow`` and ``%workflow run``): one run, live.

The view (``labextension/src/orchestrator/``) keeps no state in synced traits: on every
render it asks for what it shows (the workflows, the runs, a run's detail), so a
refreshed page shows the same. This kernel's runs change through their ``workflow:*``
frames, pushed as they are published (from the engine thread); a run of another kernel,
or of an earlier session, is shown from the store.
"""

from __future__ import annotations

import html
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, assert_never

import anywidget
import traitlets
from IPython.display import DisplayHandle
from pydantic import BaseModel, ValidationError

from boonb.errors import BoonbError
from boonb.frames import Frame, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.store.workflow_runs import RunDetail, RunSummary
from boonb.widgets.common import bundle
from boonb.widgets.orchestrator_protocol import (
    AgentTracesReply,
    AgentTracesRequest,
    OpenReply,
    OpenRequest,
    OrchestratorReply,
    RerunRequest,
    RunCancelReply,
    RunCancelRequest,
    RunFramesMessage,
    RunRequest,
    RunsReply,
    RunsRequest,
    StartedReply,
    ValidateReply,
    ValidateRequest,
    WorkflowsReply,
    WorkflowsRequest,
    parse_orchestrator_request,
)
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.widgets.traceviewer import TraceViewer
from boonb.workflow.discovery import WorkflowArgsError
from boonb.workflow.manager import run_uuid
from boonb.workflow.models import ArgError, WorkflowInfo
from boonb.workflow.report import format_run

if TYPE_CHECKING:
    from boonb.runtime import Runtime

FRAME_TYPES = frozenset({"workflow:status", "workflow:step", "workflow:log"})
Mode = Literal["orchestrator", "run"]
FLUSH_S = 0.05
"""How long a frame may wait to go to the view with the ones that follow it."""
STATIC_RUNS = 10
"""Runs the orchestrator's static fallback lists."""

_MISSING_BUNDLE = """
export default {
  render({ el }) {
    el.textContent = "boonb: the orchestrator's script is not built. "
      + "Run `npm ci && npm run build` in labextension/ (or reinstall boonb).";
  },
};
"""


class Orchestrator(anywidget.AnyWidget):
    """The workflow orchestrator, or one run's pane (``run_id`` given).

    Requests from the view arrive on the kernel's main thread (when no cell runs); frames
    arrive on the publishing thread. Both send, so every send holds ``_send_lock`` and
    each message stays whole.
    """

    _esm = bundle("orchestrator.js", _MISSING_BUNDLE)
    _css = bundle("orchestrator.css", "")

    chat_id = traitlets.Unicode("").tag(sync=True)
    """Empty: the orchestrator shows runs, not one chat (the shared view reads it)."""
    mode = traitlets.Unicode("orchestrator").tag(sync=True)
    """``orchestrator`` (selector, form, runs, run pane) or ``run`` (one run's pane)."""
    run_id = traitlets.Unicode("").tag(sync=True)
    """The run the pane opens first (set once, at construction); empty for none."""
    blocking_run = traitlets.Unicode("").tag(sync=True)
    """The run a cell is waiting for (``%%workflow``, ``%workflow run``) until it returns;
    empty once it has. The kernel answers no request of the view while a cell runs, so its
    pane cannot cancel that run: the view says to interrupt the kernel instead."""

    def __init__(
        self, run_id: uuid.UUID | str | None = None, *, runtime: Runtime | None = None
    ) -> None:
        if runtime is None:
            from boonb.runtime import get_runtime

            runtime = get_runtime()
        run = run_uuid(run_id) if run_id is not None else None
        mode: Mode = "run" if run is not None else "orchestrator"
        super().__init__(mode=mode, run_id=str(run) if run is not None else "")
        self._runtime = runtime
        self._send_lock = threading.Lock()
        # Guarded by _batch_lock: frames not yet sent, and the timer that will send them.
        self._batch_lock = threading.Lock()
        self._batch: list[WorkflowStatus | WorkflowStep | WorkflowLog] = []
        self._flusher: threading.Timer | None = None
        self._viewers: dict[uuid.UUID, TraceViewer] = {}
        # The runs whose frames the view gets in run mode: its run, and the re-runs it starts.
        self._watched: set[uuid.UUID] | None = {run} if run is not None else None
        self._unsubscribe: Callable[[], None] | None = runtime.bus.subscribe(
            self._on_frame, types=FRAME_TYPES
        )
        self.on_msg(self._on_custom_msg)

    @property
    def session_id(self) -> str:
        """The session id of this kernel, as a run's ``session_id`` names it."""
        return str(self._runtime.session_id)

    # Requests from the view (on the kernel's main thread, when no cell is running).

    def answer(self, content: Any) -> OrchestratorReply:
        """The reply to one request from the view; a bad request gets an ``ErrorReply``."""
        try:
            request = parse_orchestrator_request(content)
        except ValidationError as exc:
            return ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
        manager = self._runtime.workflows
        try:
            match request:
                case WorkflowsRequest():
                    workflows = manager.list(refresh=request.refresh)
                    return WorkflowsReply(request_id=request.request_id, workflows=workflows)
                case ValidateRequest():
                    check = manager.check_args(request.workflow, request.args)
                    return ValidateReply(request_id=request.request_id, check=check)
                case RunRequest():
                    return self._start(request)
                case RerunRequest():
                    return self._rerun(request)
                case RunCancelRequest():
                    stopped = manager.cancel(request.run_id)
                    return RunCancelReply(
                        request_id=request.request_id, run_id=request.run_id, stopped=stopped
                    )
                case RunsRequest():
                    page = manager.runs(cursor=request.cursor, limit=request.limit)
                    return RunsReply(
                        request_id=request.request_id,
                        runs=page.runs,
                        next_cursor=page.next_cursor,
                        session_id=self.session_id,
                        now=datetime.now(UTC),
                        appended=request.cursor is not None,
                    )
                case OpenRequest():
                    detail = manager.detail(request.run_id)
                    return OpenReply(
                        request_id=request.request_id, run=detail, now=datetime.now(UTC)
                    )
                case AgentTracesRequest():
                    return self._traces(request)
                case _:
                    assert_never(request)
        except BoonbError as exc:
            return ErrorReply(request_id=request.request_id, message=str(exc))

    def _start(self, request: RunRequest) -> StartedReply:
        """Start the run, or say why its arguments were refused (and nothing runs)."""
        try:
            run_id = self._runtime.workflows.run(
                request.workflow, request.args, budget=request.budget
            )
        except WorkflowArgsError as exc:
            errors = [ArgError(arg=name, message=text) for name, text in exc.problems.items()]
            return StartedReply(
                request_id=request.request_id, workflow=request.workflow, run_id=None, errors=errors
            )
        self._watch(run_id)
        return StartedReply(
            request_id=request.request_id, workflow=request.workflow, run_id=run_id, errors=[]
        )

    def _rerun(self, request: RerunRequest) -> StartedReply:
        manager = self._runtime.workflows
        run_id = manager.rerun(request.run_id)
        self._watch(run_id)
        workflow = manager.status(run_id).workflow
        return StartedReply(
            request_id=request.request_id, workflow=workflow, run_id=run_id, errors=[]
        )

    def _traces(self, request: AgentTracesRequest) -> AgentTracesReply:
        viewer = self._viewers.get(request.chat_id)
        if viewer is None:
            viewer = TraceViewer(request.chat_id, runtime=self._runtime)
            self._viewers[request.chat_id] = viewer
        return AgentTracesReply(
            request_id=request.request_id,
            chat_id=request.chat_id,
            widget=f"anywidget:{viewer.model_id}",
        )

    def _watch(self, run_id: uuid.UUID) -> None:
        if self._watched is not None:
            self._watched.add(run_id)

    def _on_custom_msg(self, _widget: object, content: Any, _buffers: object) -> None:
        self._push(self.answer(content))

    def _push(self, message: BaseModel) -> None:
        with self._send_lock:
            self.send(message.model_dump(mode="json"))

    # Live frames of this kernel's runs (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        if not isinstance(frame, WorkflowStatus | WorkflowStep | WorkflowLog):
            return
        if self._watched is not None and frame.run_id not in self._watched:
            return
        with self._batch_lock:
            self._batch.append(frame)
            if self._flusher is not None:
                return
            self._flusher = threading.Timer(FLUSH_S, self.flush)
            self._flusher.daemon = True
            self._flusher.start()

    def flush(self) -> None:
        """Send the frames waiting for their batch now (on the timer's thread, or a test's)."""
        with self._batch_lock:
            frames, self._batch = self._batch, []
            if self._flusher is not None:
                self._flusher.cancel()
            self._flusher = None
        if frames:
            self._push(RunFramesMessage(frames=frames))

    def close(self) -> None:
        """Stop forwarding frames, close the trace viewers it opened, close the widget."""
        unsubscribe, self._unsubscribe = getattr(self, "_unsubscribe", None), None
        if unsubscribe is not None:
            unsubscribe()
        flusher = getattr(self, "_flusher", None)
        if flusher is not None:
            flusher.cancel()
        for viewer in getattr(self, "_viewers", {}).values():
            viewer.close()
        super().close()

    # Static rendering, for nbviewer, GitHub and terminal IPython.

    def static(self) -> tuple[str, str]:
        """Plain text and HTML: the run as it is now, or the workflows and recent runs."""
        manager = self._runtime.workflows
        if self.run_id:
            detail = manager.detail(self.run_id)
            return run_text(detail), run_html(detail)
        workflows = manager.list()
        runs = manager.runs(limit=STATIC_RUNS).runs
        return orchestrator_text(workflows, runs), orchestrator_html(workflows, runs)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        shown = super()._repr_mimebundle_(**kwargs)
        data, metadata = shown if shown is not None else ({}, {})
        try:
            text, page = self.static()
        except BoonbError as exc:
            data["text/plain"] = f"Orchestrator: workflows unavailable: {exc}"
            return data, metadata
        data["text/plain"] = text
        data["text/html"] = page
        return data, metadata

    def __repr__(self) -> str:
        return f"<Orchestrator run={self.run_id}>" if self.run_id else "<Orchestrator>"


class RunDisplay:
    """A run pane displayed in a cell's output, with the handle that updates that output."""

    def __init__(self, pane: Orchestrator, handle: DisplayHandle) -> None:
        self.pane = pane
        self.handle = handle

    def cell_returned(self) -> None:
        """The cell stopped waiting for the run: its pane's requests are answered again."""
        self.pane.blocking_run = ""
        self.refresh()

    def refresh(self) -> None:
        """Publish the pane again, so the output's saved fallback shows the run as it ended.

        A notebook keeps the text/html and text/plain computed at display time, when the
        run had just started; without this a notebook opened on GitHub shows no progress.
        """
        self.handle.update(self.pane)


def display_run(
    run_id: uuid.UUID, *, blocking: bool = False, runtime: Runtime | None = None
) -> RunDisplay:
    """Display a run's pane in the running cell's output, with a display id.

    ``blocking``: the cell waits for the run, so until ``RunDisplay.cell_returned`` the pane
    shows how to cancel it (interrupt the kernel) in place of a Cancel nobody would answer.
    """
    from IPython.display import display

    pane = Orchestrator(run_id, runtime=runtime)
    if blocking:
        pane.blocking_run = str(pane.run_id)
    handle = display(pane, display_id=True)
    assert isinstance(handle, DisplayHandle)
    return RunDisplay(pane, handle)


# The static fallbacks.


def _tokens(used: int, budget: int | None) -> str:
    return f"{used:,} tokens" + (f" of {budget:,}" if budget else "")


def run_header(status: WorkflowStatus) -> str:
    parts = [
        f"{status.workflow} — {status.state}",
        f"{status.agents_done}/{status.agents_total} agents",
        _tokens(status.tokens_used, status.budget),
    ]
    if status.phase:
        parts.insert(1, f"phase {status.phase}")
    if status.agents_cached:
        parts.append(f"{status.agents_cached}/{status.agents_total} steps cached")
    return " · ".join(parts)


def run_text(detail: RunDetail) -> str:
    """A run as text, as ``%workflow status RUN`` prints it: header, steps, logs, result."""
    return format_run(detail)


def run_html(detail: RunDetail) -> str:
    """A run as HTML, readable without the widget's script (nbviewer, GitHub)."""
    status = detail.status
    rows = []
    for step in detail.steps:
        cells = [
            html.escape(step.phase or ""),
            f"<code>{html.escape(step.label or step.agent_id)}</code>",
            html.escape("skipped (cached)" if step.state == "cached" else step.state),
            f"{step.tokens_used:,}" if step.state != "cached" else "",
            f"{step.duration_ms / 1000:.1f} s" if step.duration_ms is not None else "",
            html.escape(step.error or step.last_log or ""),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("phase", "agent", "state", "tokens", "duration", "last line")
    )
    logs = "\n".join(f"{line.at:%H:%M:%S} {line.message}" for line in detail.logs[-20:])
    result = ""
    if status.state == "completed":
        text = json.dumps(detail.result, indent=2, ensure_ascii=False)
        result = f"<p><strong>Result</strong></p><pre>{html.escape(text[:4000])}</pre>"
    error = f"<p>error: {html.escape(status.error)}</p>" if status.error else ""
    return (
        '<div class="boonb-orchestrator-static">'
        f"<p><strong>{html.escape(run_header(status))}</strong></p>{error}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<pre>{html.escape(logs)}</pre>{result}</div>"
    )


def runs_lines(runs: list[RunSummary]) -> list[str]:
    return [
        f"  {str(r.run_id)[:8]}  {r.state:<11}  {r.workflow:<16}  "
        f"{r.created_at:%Y-%m-%d %H:%M}  {_tokens(r.tokens_used, r.budget)}"
        for r in runs
    ]


def orchestrator_text(workflows: list[WorkflowInfo], runs: list[RunSummary]) -> str:
    """The workflows and the project's recent runs, as text."""
    width = max((len(w.name) for w in workflows), default=0)
    lines = [f"Workflows: {len(workflows)}"]
    lines += [f"  {w.name:<{width}}  {w.source:8}  {w.description}" for w in workflows]
    lines.append(f"Recent runs: {len(runs)}" if runs else "No runs in this project yet.")
    lines += runs_lines(runs)
    return "\n".join(lines)


def orchestrator_html(workflows: list[WorkflowInfo], runs: list[RunSummary]) -> str:
    """The workflows and recent runs as HTML tables (nbviewer, GitHub)."""
    flows = "".join(
        f"<tr><td><code>{html.escape(w.name)}</code></td><td>{html.escape(w.source)}</td>"
        f"<td>{html.escape(w.description)}</td></tr>"
        for w in workflows
    )
    recent = "".join(
        f"<tr><td><code>{str(r.run_id)[:8]}</code></td><td>{html.escape(r.state)}</td>"
        f"<td>{html.escape(r.workflow)}</td><td>{r.created_at:%Y-%m-%d %H:%M}</td>"
        f"<td>{html.escape(_tokens(r.tokens_used, r.budget))}</td></tr>"
        for r in runs
    )
    return (
        '<div class="boonb-orchestrator-static">'
        f"<p><strong>Workflows</strong>: {len(workflows)}</p>"
        "<table><thead><tr><th>name</th><th>source</th><th>description</th></tr></thead>"
        f"<tbody>{flows}</tbody></table>"
        f"<p><strong>Recent runs</strong>: {len(runs)}</p>"
        "<table><thead><tr><th>run</th><th>state</th><th>workflow</th><th>when</th>"
        f"<th>tokens</th></tr></thead><tbody>{recent}</tbody></table></div>"
    )
