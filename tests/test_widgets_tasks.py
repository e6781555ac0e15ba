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
