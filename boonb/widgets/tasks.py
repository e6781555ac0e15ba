"""``TasksPane``: the project's background tasks, live (an anywidget).

The view (``labextension/src/tasks/``) keeps no state in synced traits: on every render it
asks for the first page of the tasks (all kernels'), and for the next pages as the user
scrolls, so a refreshed page shows the same thing and 1,000 tasks paint as fast as ten.
This kernel's tasks change through ``task:update`` frames on its bus, pushed as published
(from the engine thread); other kernels' tasks are read from the table every
``POLL_INTERVAL_S`` while any of them is pending or running, and pushed when they change.
Every frame carries the header's counts, which cover all the tasks, also those of pages
the view has not asked for. Cancel, retry, View result and the subagent's traces are
requests from the view. ``TasksPane(spawned_by=chat_id)`` shows only the tasks one chat's
agent spawned: the pane the chat view shows under an agent that spawns.
"""

from __future__ import annotations

import html
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, assert_never

import anywidget
import traitlets
from pydantic import BaseModel, ValidationError

from boonb.background.records import shown_state
from boonb.errors import BoonbError
from boonb.frames import Frame, TaskState, TaskUpdate
from boonb.store.tasks import TaskCounts
from boonb.widgets.common import bundle, chat_uuid
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.widgets.task_answers import list_reply, no_chat_yet, page_start, result_reply
from boonb.widgets.tasks_protocol import (
    FIRST_PAGE,
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

PREFETCH_FRESH_S = 2.0
"""How long a first page read as the pane is displayed may answer its view's first request."""

STATIC_LIMIT = 5000
"""The most tasks the static fallback (nbviewer, GitHub, a terminal) lists, newest first."""

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
    send holds ``_send_lock`` and each message stays whole. The lock also guards the
    counts and the frames' ``seq``, so a frame's counts are those right after its task.
    """

    _esm = bundle("tasks.js", _MISSING_BUNDLE)
    _css = bundle("tasks.css", "")

    chat_id = traitlets.Unicode("").tag(sync=True)
    """The chat whose agent spawned the tasks shown; empty: all the project's tasks."""

    def __init__(
        self,
        *,
        spawned_by: uuid.UUID | str | None = None,
        runtime: Runtime | None = None,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        if runtime is None:
            from boonb.runtime import get_runtime

            runtime = get_runtime()
        chat = None if spawned_by is None else chat_uuid(spawned_by)
        super().__init__(chat_id="" if chat is None else str(chat))
        self._runtime = runtime
        self._spawned_by = chat
        self._poll_interval = poll_interval
        # Guarded by _send_lock: what was sent, and the counts the frames carry.
        self._send_lock = threading.Lock()
        self._seq = 0
        self._mine: dict[uuid.UUID, TaskState] = {}
        """The state of each of this kernel's tasks shown, as its latest frame says."""
        self._mine_running = 0
        self._others_count = TaskCounts(total=0, running=0)
        self._prefetched: tuple[float, ListReply] | None = None
        """A first page read as the pane was displayed, and when (see ``_prefetch``)."""
        # Guarded by _poll_lock: the poller, and the last seen of each watched other task.
        self._poll_lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._others: dict[uuid.UUID, TaskUpdate | None] = {}
        """Other kernels' tasks watched: as last pushed (None: not pushed by the poller yet)."""
        self._viewers: dict[uuid.UUID, TraceViewer] = {}
        self._unsubscribe: Callable[[], None] | None = runtime.bus.subscribe(
            self._on_frame, types={"task:update"}
        )
        self.on_msg(self._on_custom_msg)

    @property
    def owner(self) -> str:
        """The session id of this kernel, as a task's ``owner`` names it."""
        return str(self._runtime.session_id)

    @property
    def spawned_by(self) -> uuid.UUID | None:
        """The chat whose spawned tasks the pane shows; None: all of the project's."""
        return self._spawned_by

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
                    return self._list(request)
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

    def _list(self, request: ListRequest) -> ListReply:
        """A page of tasks, newest first; the first page also starts the counts afresh."""
        first = request.before is None
        if first:
            ready = self._take_prefetched(request.limit)
            if ready is not None:
                return ready.model_copy(
                    update={"request_id": request.request_id, "now": datetime.now(UTC)}
                )
            self._recount()
        with self._send_lock:
            # Taken before the read: a frame after this seq may be newer than the page.
            seq, counts = self._seq, self._counts()
        found = self._runtime.tasks.list(
            limit=request.limit + 1, spawned_by=self._spawned_by, before=page_start(request)
        )
        now = datetime.now(UTC)
        return list_reply(request, found, seq=seq, counts=counts, owner=self.owner, now=now)

    def _prefetch(self) -> None:
        """Read the first page now, while the pane is displayed, for its view's first request.

        The view asks within a moment, and the database is open now (the static fallback
        just read it): answered from here, its first paint waits for no disk.
        """
        try:
            reply = self._list(ListRequest(kind="list", request_id="prefetch"))
        except BoonbError as exc:
            log.info("tasks pane: no first page ahead of the view (%s); it reads one then", exc)
            return
        with self._send_lock:
            self._prefetched = (time.monotonic(), reply)

    def _take_prefetched(self, limit: int) -> ListReply | None:
        """The prefetched first page, if it is still what a read now would find (once).

        It is, when no frame went out since: frames sent before the view existed are not
        seen by it, and every change of a task this pane shows is a frame (other kernels'
        as the poll finds them).
        """
        with self._send_lock:
            taken, self._prefetched = self._prefetched, None
            seq = self._seq
        if taken is None or limit != FIRST_PAGE:
            return None
        at, reply = taken
        fresh = time.monotonic() - at < PREFETCH_FRESH_S and reply.seq == seq
        return reply if fresh else None

    def _recount(self) -> None:
        """Count the tasks afresh: other kernels' from the table, this kernel's from memory.

        Other kernels' active tasks are watched from here on (polled while any is active).
        """
        tasks = self._runtime.tasks
        watched, others = tasks.others_now(spawned_by=self._spawned_by)
        with self._send_lock:
            # Under the lock, so a frame published meanwhile is counted after this, not lost.
            mine = {u.task_id: u.state for u in tasks.live_tasks(spawned_by=self._spawned_by)}
            self._mine = mine
            self._mine_running = sum(1 for state in mine.values() if state == "running")
            self._others_count = others
        self._watch_others(watched)

    def _counts(self) -> TaskCounts:
        """Every task shown and those running (with ``_send_lock`` held)."""
        return self._others_count + TaskCounts(total=len(self._mine), running=self._mine_running)

    def tasks(self, *, limit: int = STATIC_LIMIT) -> list[TaskUpdate]:
        """The tasks as they are now, newest first (raises ``BoonbError``)."""
        return list(self._runtime.tasks.list(limit=limit, spawned_by=self._spawned_by))

    def _result(self, request: ResultRequest) -> ResultReply | ErrorReply:
        outcome = self._runtime.tasks.result(request.task_id)
        return result_reply(request, outcome.task, outcome.result)

    def _traces(self, request: TracesRequest) -> TracesReply | ErrorReply:
        task = self._runtime.tasks.get(request.task_id)
        refused = no_chat_yet(request, task)
        if refused is not None:
            return refused
        assert task.chat_id is not None  # no_chat_yet said so
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

    def _push_frame(self, task: TaskUpdate, *, mine: bool) -> None:
        """Send a task as it is now, numbered, with the counts it leaves."""
        with self._send_lock:
            if mine:
                self._count_mine(task)
            self._seq += 1
            counts = self._counts()
            message = TaskFrameMessage(
                seq=self._seq, frame=task, total=counts.total, running=counts.running
            )
            self.send(message.model_dump(mode="json"))

    def _count_mine(self, task: TaskUpdate) -> None:
        """A frame of this kernel's task: its state in the counts (with ``_send_lock`` held)."""
        before = self._mine.get(task.task_id)
        self._mine[task.task_id] = task.state
        self._mine_running += (task.state == "running") - (before == "running")

    def _shows(self, task: TaskUpdate) -> bool:
        return self._spawned_by is None or task.parent_chat_id == self._spawned_by

    # Live frames of this kernel's tasks (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, TaskUpdate) and self._shows(frame):
            self._push_frame(frame, mine=True)

    # Other kernels' tasks: polled while any of them is active.

    def _watch_others(self, watched: list[uuid.UUID]) -> None:
        """Watch other kernels' active tasks: poll them, while there are any.

        Only their ids are read here, on the way to the first paint; the first poll pushes
        each of them once, as it may have changed since the page that showed it was read.
        """
        with self._poll_lock:
            self._others = dict.fromkeys(watched)
            if self._poller is not None or self._stop.is_set() or not watched:
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

        Read: the active ones, and those active last time (they may have ended since).
        A store that cannot be read now (locked, full) is tried again on the next poll.
        """
        with self._poll_lock:
            seen = list(self._others)
        try:
            watched, others = self._runtime.tasks.others_to_watch(
                also=seen, spawned_by=self._spawned_by
            )
        except BoonbError as exc:
            log.info("tasks pane: could not read other kernels' tasks (%s); trying again", exc)
            return True
        with self._poll_lock:
            changed = [t for t in watched if self._others.get(t.task_id) != t]
            self._others = {t.task_id: t for t in watched if t.state in ACTIVE_STATES}
            active = bool(self._others)
        with self._send_lock:
            self._others_count = others
        for task in changed:
            self._push_frame(task, mine=False)
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
        self._prefetch()
        return data, metadata

    def __repr__(self) -> str:
        shown = "" if self._spawned_by is None else f" spawned_by={str(self._spawned_by)[:8]}"
        return f"<TasksPane{shown}>"


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
        line = f"  {str(task.task_id)[:8]}  {shown_state(task.state):<11}  {task.title}"
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
            html.escape(shown_state(task.state)),
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
