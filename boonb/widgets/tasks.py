"""``TasksPane``: the project's background tasks, live (an anywidget).

The view (``labextension/src/tasks/``) keeps no state in synced traits: on every render it
asks for the project's tasks (all kernels), so a refreshed page shows the same thing. This
kernel's tasks change through ``task:update`` frames on its bus, pushed as published (from
the engine thread); other kernels' tasks are read from the table every
``POLL_INTERVAL_S`` while any of them is pending or running, and pushed when they change.
Cancel, retry, View result and the subagent's traces are requests from the view.
"""

from __future__ import annotations

import html
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, assert_never

import anywidget
import traitlets
from pydantic import BaseModel, ValidationError

from boonb.errors import BoonbError
from boonb.frames import Frame, TaskUpdate
from boonb.widgets.common import bundle
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.widgets.tasks_protocol import (
    CancelRequest,
    ListReply,
    ListRequest,
    ResultReply,
    ResultRequest,
    RetryRequest,
    TaskFrameMessage,
    TaskReply,
    TasksReply,
    TracesReply,
    TracesRequest,
    parse_tasks_request,
)
from boonb.widgets.traceviewer import TraceViewer

if TYPE_CHECKING:
    from boonb.runtime import Runtime

log = logging.getLogger("boonb.widgets")

POLL_INTERVAL_S = 2.0
"""How often other kernels' tasks are read again while any of them is active."""

ACTIVE_STATES = frozenset({"pending", "running"})

LIST_LIMIT = 5000
"""The most tasks the pane lists (newest first); its view draws only the visible ones."""

_MISSING_BUNDLE = """
export default {
  render({ el }) {
    el.textContent = "boonb: the tasks pane's script is not built. "
      + "Run `npm ci && npm run build` in labextension/ (or reinstall boonb).";
  },
};
"""


class TasksPane(anywidget.AnyWidget):
    """The project's background subagents: state, progress, cost; cancel, retry, results.

    Requests from the view arrive on the kernel's main thread (when no cell runs); frames
    arrive on the publishing thread and polls on the pane's own; all of them send, so every
    send holds ``_send_lock`` and each message stays whole.
    """

    _esm = bundle("tasks.js", _MISSING_BUNDLE)
    _css = bundle("tasks.css", "")

    chat_id = traitlets.Unicode("").tag(sync=True)
    """Empty: the pane shows the project's tasks, not one chat (the shared view reads it)."""

    def __init__(
        self, *, runtime: Runtime | None = None, poll_interval: float = POLL_INTERVAL_S
    ) -> None:
        if runtime is None:
            from boonb.runtime import get_runtime

            runtime = get_runtime()
        super().__init__()
        self._runtime = runtime
        self._poll_interval = poll_interval
        self._send_lock = threading.Lock()
        # Guarded by _poll_lock: the poller, and the last frame sent of each other kernel's task.
        self._poll_lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._others: dict[uuid.UUID, TaskUpdate] = {}
        self._viewers: dict[uuid.UUID, TraceViewer] = {}
        self._unsubscribe: Callable[[], None] | None = runtime.bus.subscribe(
            self._on_frame, types={"task:update"}
        )
        self.on_msg(self._on_custom_msg)

    @property
    def owner(self) -> str:
        """The session id of this kernel, as a task's ``owner`` names it."""
        return str(self._runtime.session_id)

    # Requests from the view (on the kernel's main thread, when no cell is running).

    def answer(self, content: Any) -> TasksReply:
        """The reply to one request from the view; a bad request gets an ``ErrorReply``."""
        try:
            request = parse_tasks_request(content)
        except ValidationError as exc:
            return ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
        try:
            tasks = self._runtime.tasks
            match request:
                case ListRequest():
                    return self._list(request.request_id)
                case CancelRequest():
                    task = tasks.cancel(request.task_id)
                    return TaskReply(request_id=request.request_id, task=task)
                case RetryRequest():
                    task = tasks.retry(request.task_id)
                    return TaskReply(request_id=request.request_id, task=task)
                case ResultRequest():
                    return self._result(request)
                case TracesRequest():
                    return self._traces(request)
                case _:
                    assert_never(request)
        except BoonbError as exc:
            return ErrorReply(request_id=request.request_id, message=str(exc))

    def _list(self, request_id: str) -> ListReply:
        listed = self.tasks()
        self._watch_others(listed)
        return ListReply(
            request_id=request_id, tasks=listed, owner=self.owner, now=datetime.now(UTC)
        )

    def tasks(self) -> list[TaskUpdate]:
        """The project's tasks as they are now, newest first (raises ``BoonbError``)."""
        return list(self._runtime.tasks.list(limit=LIST_LIMIT))

    def _result(self, request: ResultRequest) -> ResultReply | ErrorReply:
        outcome = self._runtime.tasks.result(request.task_id)
        if outcome.result is None:
            task = outcome.task
            return ErrorReply(
                request_id=request.request_id,
                message=f"task {str(task.task_id)[:8]} is {task.state}: it has no result "
                "yet; View result works once it has completed",
            )
        return ResultReply(
            request_id=request.request_id,
            task_id=request.task_id,
            answer=outcome.result.answer,
            summary=outcome.result.summary,
        )

    def _traces(self, request: TracesRequest) -> TracesReply | ErrorReply:
        task = self._runtime.tasks.get(request.task_id)
        if task.chat_id is None:
            return ErrorReply(
                request_id=request.request_id,
                message=f"task {str(task.task_id)[:8]} has no chat yet (it is {task.state}); "
                "its traces appear once it starts running",
            )
        viewer = self._viewers.get(task.chat_id)
        if viewer is None:
            viewer = TraceViewer(task.chat_id, runtime=self._runtime)
            self._viewers[task.chat_id] = viewer
        return TracesReply(
            request_id=request.request_id,
            task_id=task.task_id,
            chat_id=task.chat_id,
            widget=f"anywidget:{viewer.model_id}",
        )

    def _on_custom_msg(self, _widget: object, content: Any, _buffers: object) -> None:
        self._push(self.answer(content))

    def _push(self, message: BaseModel) -> None:
        with self._send_lock:
            self.send(message.model_dump(mode="json"))

    # Live frames of this kernel's tasks (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, TaskUpdate):
            self._push(TaskFrameMessage(frame=frame))

    # Other kernels' tasks: polled while any of them is active.

    def _watch_others(self, listed: Iterable[TaskUpdate]) -> None:
        others = {t.task_id: t for t in listed if t.owner != self.owner}
        with self._poll_lock:
            self._others = others
            if self._poller is not None or self._stop.is_set():
                return
            if not any(t.state in ACTIVE_STATES for t in others.values()):
                return
            self._poller = threading.Thread(
                target=self._poll, name="boonb-tasks-pane-poll", daemon=True
            )
            self._poller.start()

    def _poll(self) -> None:
        """Push other kernels' tasks that changed, until none of them is active."""
        try:
            while not self._stop.wait(self._poll_interval):
                if not self.poll_once():
                    return
        finally:
            with self._poll_lock:
                self._poller = None

    def poll_once(self) -> bool:
        """Read other kernels' tasks once and push the changed ones; False when none is active.

        A store that cannot be read now (locked, full) is tried again on the next poll.
        """
        try:
            listed = self.tasks()
        except BoonbError as exc:
            log.info("tasks pane: could not read other kernels' tasks (%s); trying again", exc)
            return True
        changed = []
        with self._poll_lock:
            for task in listed:
                if task.owner == self.owner:
                    continue
                if self._others.get(task.task_id) != task:
                    self._others[task.task_id] = task
                    changed.append(task)
            active = any(t.state in ACTIVE_STATES for t in self._others.values())
        for task in changed:
            self._push(TaskFrameMessage(frame=task))
        return active

    @property
    def polling(self) -> bool:
        """Whether other kernels' tasks are being polled now."""
        with self._poll_lock:
            return self._poller is not None

    def close(self) -> None:
        """Stop the live frames and the polling, close the trace viewers, close the widget."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        unsubscribe, self._unsubscribe = getattr(self, "_unsubscribe", None), None
        if unsubscribe is not None:
            unsubscribe()
        for viewer in getattr(self, "_viewers", {}).values():
            viewer.close()
        super().close()

    # Static rendering, for nbviewer, GitHub and terminal IPython.

    def static(self) -> tuple[str, str]:
        """Plain text and HTML of the tasks as they are now."""
        listed = self.tasks()
        return static_text(listed), static_html(listed)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        shown = super()._repr_mimebundle_(**kwargs)
        data, metadata = shown if shown is not None else ({}, {})
        try:
            text, page = self.static()
        except BoonbError as exc:
            data["text/plain"] = f"TasksPane: tasks unavailable: {exc}"
            return data, metadata
        data["text/plain"] = text
        data["text/html"] = page
        return data, metadata

    def __repr__(self) -> str:
        return "<TasksPane>"


def shown_state(task: TaskUpdate) -> str:
    """The state as the pane shows it: ``read`` (a collected result) is completed."""
    return "completed" if task.state == "read" else task.state


def duration_text(task: TaskUpdate, now: datetime | None = None) -> str:
    """Elapsed so far while it runs, the total once done, ``waiting`` before it starts."""
    if task.started_at is None:
        return "waiting" if task.state == "pending" else "–"
    end = task.finished_at or now or datetime.now(UTC)
    seconds = max(0.0, (end - task.started_at).total_seconds())
    text = f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)}m {round(seconds % 60)}s"
    return text if task.finished_at is not None else f"{text} elapsed"


def progress_text(task: TaskUpdate) -> str:
    """Turn / max turns, the last tool call, tokens and cost: what the entry's bar says."""
    p = task.progress
    if p is None:
        return ""
    parts = [f"{p.turn}/{p.max_turns} turns"]
    if p.last_tool:
        parts.append(f"last tool {p.last_tool}")
    if p.tokens_used:
        parts.append(f"{p.tokens_used:,} tokens")
    if p.cost_usd is not None:
        parts.append(f"${p.cost_usd:.4f}" if p.cost_usd >= 0.0001 or not p.cost_usd else "<$0.0001")
    return " · ".join(parts)


def static_text(tasks: list[TaskUpdate], now: datetime | None = None) -> str:
    """The tasks as plain text: a header with the running count, one line per task."""
    running = sum(1 for t in tasks if t.state == "running")
    lines = [f"Background tasks: {len(tasks)} ({running} running)"]
    if not tasks:
        lines.append("  none yet: spawn one with boonb.spawn(...) or an agent's spawn_subagent")
    for task in tasks:
        line = f"  {str(task.task_id)[:8]}  {shown_state(task):<11}  {task.title}"
        facts = [duration_text(task, now), progress_text(task)]
        if task.error:
            facts.append(f"error: {task.error}")
        line += "  (" + " · ".join(f for f in facts if f) + ")"
        lines.append(line)
    return "\n".join(lines)


def static_html(tasks: list[TaskUpdate], now: datetime | None = None) -> str:
    """The tasks as an HTML table, readable without the widget's script (nbviewer, GitHub)."""
    running = sum(1 for t in tasks if t.state == "running")
    rows = []
    for task in tasks:
        cells = [
            f"<code>{str(task.task_id)[:8]}</code>",
            html.escape(shown_state(task)),
            html.escape(task.title),
            html.escape(duration_text(task, now)),
            html.escape(progress_text(task)),
            html.escape(task.error or ""),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("task", "state", "title", "duration", "progress", "error")
    )
    return (
        '<div class="boonb-tasks-static">'
        f"<p><strong>Background tasks</strong>: {len(tasks)} ({running} running)</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
