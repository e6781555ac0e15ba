"""The tasks pane's kernel side: lists, live frames, polling of other kernels, the requests.

Driven through a dummy comm (anywidget's custom messages, captured), against a real
runtime: a real project database, tasks of "other kernels" written as real rows, this
kernel's tasks spawned on the simulator.
"""

from __future__ import annotations

import os
import queue
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boonb.background import TaskResult, TaskSummary
from boonb.frames import TaskProgress, TaskUpdate
from boonb.runtime import Runtime
from boonb.store.tasks import owner_row
from boonb.widgets.common import ChatIdError
from boonb.widgets.tasks import TasksPane, static_html, static_text

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OTHER_KERNEL = "other-kernel-session"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime()
    yield rt
    rt.shutdown()


class Pane:
    """A TasksPane whose outgoing custom messages are captured."""

    def __init__(self, widget: TasksPane) -> None:
        self.widget = widget
        self.sent: queue.Queue[dict[str, Any]] = queue.Queue()
        original = widget.send

        def capture(content: dict[str, Any], buffers: object = None) -> None:
            self.sent.put(content)
            original(content, buffers)

        widget.send = capture

    def ask(self, content: Any) -> dict[str, Any]:
        """Deliver a message as the comm does, and return the reply it caused."""
        self.drain()
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )
        replies = [m for m in self.drain() if m["kind"] != "frame"]
        assert len(replies) == 1, replies
        return replies[0]

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.sent.empty():
            out.append(self.sent.get_nowait())
        return out

    def next_frame(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame pushed (from any thread), waiting for it up to ``timeout``."""
        while True:
            message = self.sent.get(timeout=timeout)
            if message["kind"] == "frame":
                return message["frame"]


@pytest.fixture
def pane(runtime: Runtime) -> Iterator[Pane]:
    widget = TasksPane(runtime=runtime, poll_interval=3600)
    yield Pane(widget)
    widget.close()


def other_kernels_task(
    runtime: Runtime,
    *,
    state: str = "running",
    title: str = "summarise the logs",
    seconds: float = 0.0,
    result: TaskResult | None = None,
    error: str | None = None,
    chat_id: uuid.UUID | None = None,
    task_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A task row as another live kernel of the project writes it (same pid: alive)."""
    task_id = task_id or uuid.uuid4()
    created = T0 + timedelta(seconds=seconds)
    done = state in ("completed", "read", "failed", "cancelled")
    progress = TaskProgress(turn=2, max_turns=10, last_tool="grep", tokens_used=1500)
    runtime.store.writer.enqueue(
        owner_row(
            {
                "id": task_id,
                "type": "background_subagent",
                "state": state,
                "title": title,
                "chat_id": chat_id,
                "owner": OTHER_KERNEL,
                "owner_pid": os.getpid(),
                "owner_host": socket.gethostname(),
                "attempt": 1,
                "payload": {"prompt": title, "max_turns": 10},
                "result": None if result is None else result.model_dump(mode="json"),
                "error": error,
                "progress": {
                    "turn": progress.turn,
                    "max_turns": progress.max_turns,
                    "last_tool": progress.last_tool,
                    "tokens_used": progress.tokens_used,
                },
                "created_at": created,
                "started_at": created if state != "pending" else None,
                "finished_at": created + timedelta(seconds=4) if done else None,
                "updated_at": created,
            }
        )
    )
    runtime.store.writer.flush()
    return task_id


def test_list_reply_holds_every_task_of_the_project_newest_first(
    pane: Pane, runtime: Runtime
) -> None:
    older = other_kernels_task(runtime, state="completed", seconds=0)
    newer = other_kernels_task(runtime, state="failed", seconds=10, error="boom")
    reply = pane.ask({"kind": "list", "request_id": "l1"})
    assert reply["kind"] == "list"
    assert reply["request_id"] == "l1"
    assert [t["task_id"] for t in reply["tasks"]] == [str(newer), str(older)]
    assert reply["tasks"][0]["error"] == "boom"
    assert reply["tasks"][1]["progress"]["last_tool"] == "grep"
    assert reply["owner"] == str(runtime.session_id)
    assert datetime.fromisoformat(reply["now"]).tzinfo is not None


def test_this_kernels_task_updates_are_pushed_as_they_are_published(
    pane: Pane, runtime: Runtime
) -> None:
    frame = TaskUpdate(
        task_id=uuid.uuid4(),
        task_type="background_subagent",
        state="running",
        title="live one",
        owner=str(runtime.session_id),
        created_at=T0,
        started_at=T0,
        progress=TaskProgress(turn=1, max_turns=5, last_tool="read_file"),
    )
    runtime.bus.publish(frame)
    pushed = pane.next_frame()
    assert pushed["task_id"] == str(frame.task_id)
    assert pushed["progress"]["last_tool"] == "read_file"

    pane.widget.close()
    runtime.bus.publish(frame)
    assert pane.drain() == []  # a closed pane stops listening


def test_a_spawned_task_reaches_the_pane_from_pending_to_completed(
    pane: Pane, runtime: Runtime
) -> None:
    task = runtime.tasks.spawn("Say hello", metadata={"name": "greeter"})
    states: list[str] = []
    while not states or states[-1] not in ("completed", "failed"):
        frame = pane.next_frame(timeout=30)
        if frame["task_id"] == str(task.task_id):
            states.append(frame["state"])
    assert states[0] == "pending" and "running" in states and states[-1] == "completed"
    listed = pane.ask({"kind": "list", "request_id": "l"})["tasks"]
    assert [(t["title"], t["state"]) for t in listed] == [("greeter", "completed")]


def test_other_kernels_active_tasks_are_polled_until_none_is_active(runtime: Runtime) -> None:
    task = other_kernels_task(runtime, state="running")
    widget = TasksPane(runtime=runtime, poll_interval=0.05)
    pane = Pane(widget)
    try:
        pane.ask({"kind": "list", "request_id": "l"})
        poller = widget._poller
        assert poller is not None and widget.polling
        other_kernels_task(runtime, state="completed", task_id=task)  # its owner finished it
        frame = pane.next_frame()
        assert (frame["task_id"], frame["state"]) == (str(task), "completed")
        poller.join(timeout=10)
        assert not poller.is_alive() and not widget.polling  # nothing left to watch
    finally:
        widget.close()


def test_no_polling_while_no_other_kernels_task_is_active(pane: Pane, runtime: Runtime) -> None:
    other_kernels_task(runtime, state="completed")
    other_kernels_task(runtime, state="failed", error="boom")
    pane.ask({"kind": "list", "request_id": "l"})
    assert not pane.widget.polling


def test_poll_once_pushes_only_changed_tasks(pane: Pane, runtime: Runtime) -> None:
    still = other_kernels_task(runtime, state="running", seconds=0)
    moving = other_kernels_task(runtime, state="running", seconds=1)
    pane.ask({"kind": "list", "request_id": "l"})
    # The first poll pushes each watched task once: the list read only their ids.
    assert pane.widget.poll_once() is True
    assert sorted(m["frame"]["task_id"] for m in pane.drain()) == sorted([str(still), str(moving)])
    assert pane.widget.poll_once() is True
    assert pane.drain() == []
    other_kernels_task(runtime, state="failed", seconds=1, error="boom", task_id=moving)
    assert pane.widget.poll_once() is True  # ``still`` runs on
    pushed = [m["frame"] for m in pane.drain()]
    assert [(f["task_id"], f["state"]) for f in pushed] == [(str(moving), "failed")]
    assert str(still) not in {f["task_id"] for f in pushed}


def test_cancel_request_asks_another_kernel_to_cancel_its_task(
    pane: Pane, runtime: Runtime
) -> None:
    task = other_kernels_task(runtime, state="running")
    reply = pane.ask({"kind": "cancel", "request_id": "c", "task_id": str(task)})
    assert reply["kind"] == "task"
    assert reply["task"]["task_id"] == str(task)
    assert reply["task"]["cancel_requested"] is True
    assert runtime.tasks.get(task).cancel_requested


def test_cancel_of_a_finished_task_is_an_error_reply_saying_so(
    pane: Pane, runtime: Runtime
) -> None:
    task = other_kernels_task(runtime, state="completed")
    reply = pane.ask({"kind": "cancel", "request_id": "c", "task_id": str(task)})
    assert reply["kind"] == "error" and reply["request_id"] == "c"
    assert "already ended" in reply["message"]


def test_retry_request_runs_a_failed_task_again_as_a_new_attempt(
    pane: Pane, runtime: Runtime
) -> None:
    task = other_kernels_task(runtime, state="failed", error="the model server went away")
    reply = pane.ask({"kind": "retry", "request_id": "r", "task_id": str(task)})
    assert reply["kind"] == "task"
    again = reply["task"]
    assert again["task_id"] != str(task)
    assert again["retry_of"] == str(task)
    assert again["attempt"] == 2
    assert again["owner"] == str(runtime.session_id)  # this kernel runs it


def test_result_request_returns_the_answer_and_summary_and_marks_it_read(
    pane: Pane, runtime: Runtime
) -> None:
    summary = TaskSummary(turns=3, tool_calls=2, tokens_used=4200, cost_usd=0.01)
    result = TaskResult(answer='{"files": 3, "largest": "a.csv"}', summary=summary)
    task = other_kernels_task(runtime, state="completed", result=result)
    reply = pane.ask({"kind": "result", "request_id": "v", "task_id": str(task)})
    assert reply["kind"] == "result"
    assert reply["answer"] == '{"files": 3, "largest": "a.csv"}'
    assert reply["summary"]["turns"] == 3 and reply["summary"]["tokens_used"] == 4200
    assert runtime.tasks.get(task).state == "read"


def test_result_request_for_a_running_task_says_there_is_no_result_yet(
    pane: Pane, runtime: Runtime
) -> None:
    task = other_kernels_task(runtime, state="running")
    reply = pane.ask({"kind": "result", "request_id": "v", "task_id": str(task)})
    assert reply["kind"] == "error"
    assert "running" in reply["message"] and "no result yet" in reply["message"]


def test_traces_request_returns_a_trace_viewer_of_the_subagent_chat(
    pane: Pane, runtime: Runtime
) -> None:
    chat = uuid.uuid4()
    task = other_kernels_task(runtime, state="running", chat_id=chat)
    reply = pane.ask({"kind": "traces", "request_id": "t", "task_id": str(task)})
    assert reply["kind"] == "traces" and reply["chat_id"] == str(chat)
    viewer = pane.widget._viewers[chat]
    assert reply["widget"] == f"anywidget:{viewer.model_id}"
    again = pane.ask({"kind": "traces", "request_id": "t2", "task_id": str(task)})
    assert again["widget"] == reply["widget"]  # one viewer per chat, not one per click
    pane.widget.close()
    assert viewer.comm is None  # closed with the pane


def test_traces_request_for_a_task_without_a_chat_says_when_it_will_have_one(
    pane: Pane, runtime: Runtime
) -> None:
    task = other_kernels_task(runtime, state="pending")
    reply = pane.ask({"kind": "traces", "request_id": "t", "task_id": str(task)})
    assert reply["kind"] == "error"
    assert "no chat yet" in reply["message"] and "once it starts running" in reply["message"]


@pytest.mark.parametrize(
    ("content", "request_id", "says"),
    [
        ({"kind": "launch", "request_id": "x"}, "x", "invalid request"),
        ({"kind": "cancel", "request_id": "x", "task_id": "nope"}, "x", "task_id"),
        ({"kind": "list"}, None, "request_id"),
        ({"kind": "list", "request_id": "x", "limit": 0}, "x", "limit"),
        ({"kind": "list", "request_id": "x", "limit": 100_000}, "x", "limit"),
        ({"kind": "list", "request_id": "x", "before": {"task_id": "nope"}}, "x", "before"),
        ("not an object", None, "invalid request"),
        (
            {"kind": "cancel", "request_id": "x", "task_id": str(uuid.UUID(int=7))},
            "x",
            "%tasks list",
        ),
    ],
)
def test_bad_requests_get_an_error_reply(
    pane: Pane, content: Any, request_id: str | None, says: str
) -> None:
    reply = pane.ask(content)
    assert reply["kind"] == "error"
    assert reply["request_id"] == request_id
    assert says in reply["message"]


def test_static_fallback_shows_each_task_with_state_duration_progress_and_error(
    pane: Pane, runtime: Runtime
) -> None:
    other_kernels_task(runtime, state="running", title="scan <the> repo", seconds=0)
    other_kernels_task(runtime, state="failed", title="fetch docs", seconds=5, error="timed out")
    other_kernels_task(runtime, state="read", title="count rows", seconds=9)
    tasks = pane.widget.tasks()
    now = T0 + timedelta(seconds=12.5)
    text = static_text(tasks, now)
    assert text.splitlines()[0] == "Background tasks: 3 (1 running)"
    assert "completed    count rows  (4.0 s · 2/10 turns" in text  # read shows as completed
    assert "failed       fetch docs  (4.0 s" in text and "error: timed out" in text
    assert "running      scan <the> repo  (12.5 s elapsed · 2/10 turns · last tool grep" in text
    page = static_html(tasks, now)
    assert "scan &lt;the&gt; repo" in page and "<the>" not in page
    assert page.count("<tr>") == 4  # the header and three tasks
    shown = pane.widget._repr_mimebundle_()
    assert shown is not None
    data, _ = shown
    assert data["text/plain"].startswith("Background tasks: 3")
    assert "application/vnd.jupyter.widget-view+json" in data


def _page(pane: Pane, limit: int, before: dict[str, Any] | None = None) -> dict[str, Any]:
    return pane.ask({"kind": "list", "request_id": "p", "limit": limit, "before": before})


def test_pages_hold_every_task_once_newest_first_and_the_first_is_small(
    pane: Pane, runtime: Runtime
) -> None:
    theirs = [other_kernels_task(runtime, state="completed", seconds=i) for i in range(5)]
    ours = [runtime.tasks.spawn(f"Say hello {i}").task_id for i in range(2)]  # newest
    first = _page(pane, 3)
    assert len(first["tasks"]) == 3 and first["next_cursor"] is not None
    assert first["total"] == 7
    seen = [t["task_id"] for t in first["tasks"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = _page(pane, 3, cursor)
        assert page["tasks"], page
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
    assert seen == [str(t) for t in reversed(ours)] + [str(t) for t in reversed(theirs)]


def test_a_page_keeps_its_place_when_a_newer_task_is_added_meanwhile(
    pane: Pane, runtime: Runtime
) -> None:
    tasks = [other_kernels_task(runtime, state="failed", seconds=i) for i in range(4)]
    first = _page(pane, 2)
    other_kernels_task(runtime, state="completed", seconds=100)  # the newest now
    second = _page(pane, 2, first["next_cursor"])
    assert [t["task_id"] for t in second["tasks"]] == [str(tasks[1]), str(tasks[0])]
    assert second["next_cursor"] is None
    assert second["total"] == 4  # counts are refreshed by a first page, and by frames


def test_the_counts_cover_tasks_of_pages_not_shown_and_follow_the_frames(
    pane: Pane, runtime: Runtime
) -> None:
    for i in range(6):
        other_kernels_task(runtime, state="running" if i < 2 else "completed", seconds=i)
    first = _page(pane, 1)
    assert len(first["tasks"]) == 1
    assert (first["total"], first["running"]) == (6, 2)
    ours = TaskUpdate(
        task_id=uuid.uuid4(),
        task_type="background_subagent",
        state="running",
        title="live one",
        owner=str(runtime.session_id),
        created_at=T0,
        started_at=T0,
    )
    runtime.bus.publish(ours)
    pushed = _next_message(pane)
    assert (pushed["total"], pushed["running"]) == (7, 3)
    runtime.bus.publish(TaskUpdate(**{**_fields(ours), "state": "completed", "finished_at": T0}))
    ended = _next_message(pane)
    assert ended["seq"] > pushed["seq"]
    assert (ended["total"], ended["running"]) == (7, 2)


def test_a_frame_published_after_the_page_was_read_has_a_higher_seq_than_the_page(
    pane: Pane, runtime: Runtime
) -> None:
    frame = TaskUpdate(
        task_id=uuid.uuid4(),
        task_type="background_subagent",
        state="pending",
        title="live one",
        owner=str(runtime.session_id),
        created_at=T0,
    )
    runtime.bus.publish(frame)
    before = _next_message(pane)
    page = _page(pane, 5)
    runtime.bus.publish(TaskUpdate(**{**_fields(frame), "state": "running", "started_at": T0}))
    after = _next_message(pane)
    assert before["seq"] <= page["seq"] < after["seq"]


def test_a_pane_of_one_chat_lists_counts_and_follows_only_the_tasks_it_spawned(
    runtime: Runtime,
) -> None:
    chat, elsewhere = uuid.uuid4(), uuid.uuid4()
    widget = TasksPane(spawned_by=str(chat), runtime=runtime, poll_interval=3600)
    pane = Pane(widget)
    try:
        assert widget.chat_id == str(chat)  # the view's root names the chat
        for i, by in enumerate((chat, elsewhere, None, chat)):
            task = other_kernels_task(runtime, state="running", seconds=i)
            with runtime.store.db.connection() as con:
                con.execute("UPDATE tasks SET parent_chat_id = ? WHERE id = ?", [by, task])
        listed = _page(pane, 10)
        assert [t["parent_chat_id"] for t in listed["tasks"]] == [str(chat), str(chat)]
        assert (listed["total"], listed["running"]) == (2, 2)

        base = TaskUpdate(
            task_id=uuid.uuid4(),
            task_type="background_subagent",
            state="pending",
            title="not ours",
            owner=str(runtime.session_id),
            parent_chat_id=elsewhere,
            created_at=T0,
        )
        runtime.bus.publish(base)
        ours = TaskUpdate(**{**_fields(base), "task_id": uuid.uuid4(), "parent_chat_id": chat})
        runtime.bus.publish(ours)
        pushed = _next_message(pane)
        assert pushed["frame"]["task_id"] == str(ours.task_id)  # the other chat's was not sent
        assert pushed["total"] == 3
        assert pane.drain() == []
    finally:
        widget.close()


def test_a_pane_of_a_chat_that_is_no_uuid_says_what_a_chat_id_is(runtime: Runtime) -> None:
    with pytest.raises(ChatIdError, match="chat id must be a UUID"):
        TasksPane(spawned_by="not-a-chat", runtime=runtime)


def _next_message(pane: Pane, timeout: float = 10.0) -> dict[str, Any]:
    message = pane.sent.get(timeout=timeout)
    assert message["kind"] == "frame", message
    return message


def _fields(update: TaskUpdate) -> dict[str, Any]:
    return {f: getattr(update, f) for f in update.__dataclass_fields__ if f != "type"}


def test_the_first_page_read_as_the_pane_is_displayed_answers_its_views_first_request(
    pane: Pane, runtime: Runtime
) -> None:
    shown = other_kernels_task(runtime, state="completed", seconds=0)
    pane.widget._repr_mimebundle_()
    # Written to the table, with no frame: the prefetched page does not read it again.
    other_kernels_task(runtime, state="completed", seconds=5)
    first = pane.ask({"kind": "list", "request_id": "view-1"})
    assert first["request_id"] == "view-1"
    assert [t["task_id"] for t in first["tasks"]] == [str(shown)]
    again = pane.ask({"kind": "list", "request_id": "view-2"})  # used once only
    assert len(again["tasks"]) == 2 and again["total"] == 2


def test_a_frame_sent_after_the_pane_was_displayed_makes_the_first_request_read_afresh(
    pane: Pane, runtime: Runtime
) -> None:
    pane.widget._repr_mimebundle_()
    # A frame before the view exists never reaches it: the page must come from a new read.
    task = runtime.tasks.spawn("Say hello")
    first = pane.ask({"kind": "list", "request_id": "view-1"})
    assert str(task.task_id) in [t["task_id"] for t in first["tasks"]]
    assert first["seq"] >= 1 and first["total"] == 1
