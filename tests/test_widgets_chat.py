"""The chat view's kernel side: snapshots, follow-ups, live frames and the static fallback."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boonb import api
from boonb.agent.loop import Agent
from boonb.agent.sessions import RESTART_NOTE
from boonb.agent.tools.registry import tool
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.widgets import ChatView
from boonb.widgets.chat_history import message_turns
from tests.kernels import Kernel


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime()
    yield rt
    rt.shutdown()


class View:
    """A ChatView whose outgoing custom messages are captured."""

    def __init__(self, widget: ChatView) -> None:
        self.widget = widget
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()

        def capture(content: dict[str, Any], buffers: object = None) -> None:
            with self._lock:
                self.sent.append(content)

        widget.send = capture

    def ask(self, content: Any) -> dict[str, Any]:
        """Deliver a message as the comm does, and return the reply it caused."""
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )
        with self._lock:
            replies = [m for m in self.sent if m["kind"] != "frame"]
        return replies[-1]

    def frames(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.sent if m["kind"] == "frame"]


class Gate:
    """A tool that blocks until released, so a run can be caught in its tool phase."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

        def hold(reason: str) -> str:
            """Wait for the test to let the call finish."""
            self.entered.set()
            self.release.wait(20)
            return f"released: {reason}"

        self.tool = tool(name="hold")(hold)


def agent_with_rules(runtime: Runtime, *rules: Rule, tools: list[Any] | None = None) -> Agent:
    sim = runtime.simulator()
    sim.clear_rules()
    for rule in rules:
        sim.add_rule(rule)
    return api.new_agent(tools=tools, runtime=runtime)


def open_view(agent: Agent, runtime: Runtime) -> View:
    return View(ChatView(agent=agent, runtime=runtime))


def mimebundle(widget: ChatView) -> dict[str, Any]:
    bundle = widget._repr_mimebundle_()
    assert bundle is not None
    return bundle[0]


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_snapshot_returns_the_messages_by_turn_and_the_timeline(runtime: Runtime) -> None:
    agent = agent_with_rules(
        runtime, Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}])
    )
    view = open_view(agent, runtime)
    runtime.engine.run(agent.run("show files"))
    reply = view.ask({"kind": "snapshot", "request_id": "s1"})
    assert (reply["kind"], reply["request_id"]) == ("snapshot", "s1")
    assert (reply["live"], reply["can_send"], reply["state"]) == (True, True, "awaiting_input")
    roles = [(m["role"], m["turn_number"]) for m in reply["messages"]]
    assert roles == [("system", 0), ("user", 1), ("assistant", 1), ("tool", 1), ("assistant", 2)]
    call = reply["messages"][2]["tool_calls"][0]
    assert call["name"] == "list_files"
    assert reply["messages"][3]["tool_call_id"] == call["id"]
    turns = reply["turns"]
    assert [(t["turn_number"], t["tool_calls"]) for t in turns] == [(1, 1), (2, 0)]
    assert all(t["started_at"] and t["tokens_used"] > 0 for t in turns)
    assert turns[1]["cache_tokens"] > 0  # the second call repeats the first one's prefix
    cache = runtime.store.traces.turn_cache(agent.chat_id)
    assert [t["input_tokens"] for t in turns] == [c.input_tokens for c in cache]
    assert reply["pending_tool_calls"] == [] and reply["restarts"] == []
    # The reply echoes the saved session as a session_restored frame.
    restored = reply["restored"]
    assert restored["type"] == "session_restored"
    assert restored["agent_session_id"] == str(runtime.savers[agent.chat_id].agent_session_id)
    # It reflects every frame of the run; only news that saves reached the disk may follow.
    later = [f["frame"]["type"] for f in view.frames() if f["seq"] > reply["seq"]]
    assert set(later) <= {"session_saved"}


def test_snapshot_mid_run_shows_the_pending_tool_call_and_refuses_a_follow_up(
    runtime: Runtime,
) -> None:
    gate = Gate()
    agent = agent_with_rules(
        runtime,
        Rule("wait", tool_calls=[{"name": "hold", "arguments": {"reason": "test"}}]),
        tools=[gate.tool],
    )
    view = open_view(agent, runtime)
    future = runtime.engine.submit(agent.run("please wait"))
    try:
        assert gate.entered.wait(10)
        reply = view.ask({"kind": "snapshot", "request_id": "mid"})
        assert (reply["state"], reply["phase"]) == ("in_progress", "tools")
        [pending] = reply["pending_tool_calls"]
        assert (pending["name"], pending["running"]) == ("hold", True)
        assert pending["arguments"] == '{"reason": "test"}'
        assert [t["turn_number"] for t in reply["turns"]] == [1]
        assert reply["can_send"] is False and "still running" in reply["send_blocked"]
        refused = view.ask({"kind": "send", "request_id": "early", "text": "hurry up"})
        assert refused == {
            "kind": "error",
            "request_id": "early",
            "message": "not sent: the agent is still running; wait for its answer",
        }
    finally:
        gate.release.set()
    future.result(10)
    after = view.ask({"kind": "snapshot", "request_id": "after"})
    assert after["pending_tool_calls"] == [] and after["can_send"] is True
    assert [t["turn_number"] for t in after["turns"]] == [1, 2]


def test_send_runs_a_follow_up_turn_on_the_engine(runtime: Runtime) -> None:
    agent = agent_with_rules(runtime, tools=[])  # one model call per turn, quoting the prompt
    view = open_view(agent, runtime)
    runtime.engine.run(agent.run("hello"))
    reply = view.ask({"kind": "send", "request_id": "f1", "text": "and now?"})
    assert reply == {"kind": "send", "request_id": "f1", "turn_number": 2}
    run = view.widget._run
    assert run is not None
    result = run.result(10)
    assert "and now?" in result.content
    snap = view.ask({"kind": "snapshot", "request_id": "s"})
    tail = [(m["role"], m["turn_number"], m["content"]) for m in snap["messages"][-2:]]
    assert tail[0] == ("user", 2, "and now?")
    assert tail[1][:2] == ("assistant", 2)
    assert [t["turn_number"] for t in snap["turns"]] == [1, 2]
    # The follow-up's frames reached the view: its user message, deltas and the answer.
    kinds = [(f["frame"]["type"], f["frame"].get("turn_number")) for f in view.frames()]
    assert ("turn:start", 2) in kinds and ("message:delta", 2) in kinds


def test_frames_are_numbered_and_only_this_chats_are_forwarded(runtime: Runtime) -> None:
    agent = agent_with_rules(
        runtime, Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}])
    )
    other = api.new_agent(runtime=runtime)
    view = open_view(agent, runtime)
    runtime.engine.run(other.run("show files"))
    assert view.frames() == []
    runtime.engine.run(agent.run("show files"))
    wait_until(lambda: any(f["frame"]["type"] == "session_saved" for f in view.frames()))
    frames = view.frames()
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    types = {f["frame"]["type"] for f in frames}
    assert types >= {
        "message:delta",
        "message:complete",
        "turn:start",
        "turn:complete",
        "tool_trace:start",
        "tool_trace:complete",
        "model_call:complete",
        "session_saved",
    }
    for f in frames:
        frame = f["frame"]
        chat = frame["trace"]["chat_id"] if "trace" in frame else frame["chat_id"]
        assert chat == str(agent.chat_id)
    completes = [f for f in frames if f["frame"]["type"] == "message:complete"]
    # Each message:complete carries the message as the view shows it, with its history index.
    assert [c["message"]["index"] for c in completes] == [1, 2, 3, 4]
    tool_result = completes[2]["message"]
    assert tool_result["role"] == "tool"
    assert tool_result["tool_call_id"] == completes[1]["message"]["tool_calls"][0]["id"]


def test_a_saved_chat_not_in_this_kernel_is_shown_from_its_snapshot_and_takes_no_follow_up(
    runtime: Runtime,
) -> None:
    agent = agent_with_rules(runtime)
    runtime.engine.run(agent.run("remember me"))
    session_id = runtime.savers[agent.chat_id].agent_session_id
    del runtime.chats[agent.chat_id]  # as in a new kernel that has not resumed it
    del runtime.savers[agent.chat_id]
    view = View(ChatView(agent.chat_id, runtime=runtime))
    reply = view.ask({"kind": "snapshot", "request_id": "s"})
    assert reply["live"] is False and reply["can_send"] is False
    # The id the view's header shows: `%agent resume` takes a chat id or a prefix of one.
    assert f"%agent resume {str(agent.chat_id)[:8]}" in reply["send_blocked"]
    assert str(session_id) not in reply["send_blocked"]
    assert [m["content"] for m in reply["messages"] if m["role"] == "user"] == ["remember me"]
    assert reply["restored"]["agent_session_id"] == str(session_id)
    refused = view.ask({"kind": "send", "request_id": "x", "text": "hello?"})
    assert refused["kind"] == "error" and "not running in this kernel" in refused["message"]


def test_an_unknown_chat_gets_an_error_reply(runtime: Runtime) -> None:
    view = View(ChatView(uuid.uuid4(), runtime=runtime))
    reply = view.ask({"kind": "snapshot", "request_id": "s"})
    assert reply["kind"] == "error" and reply["request_id"] == "s"
    assert "no saved session" in reply["message"]
    assert "no saved session" in mimebundle(view.widget)["text/plain"]


def test_a_restart_note_marks_the_turn_it_starts(runtime: Runtime) -> None:
    agent = agent_with_rules(runtime, tools=[])  # one model call per turn
    runtime.engine.run(agent.run("before the restart"))
    agent.note_restart(RESTART_NOTE)
    view = open_view(agent, runtime)
    reply = view.ask({"kind": "snapshot", "request_id": "s"})
    note = reply["messages"][-1]
    assert (note["role"], note["restart"], note["turn_number"]) == ("user", True, 2)
    assert reply["restarts"] == [2]
    assert "kernel restarted" in mimebundle(view.widget)["text/plain"]


@pytest.mark.parametrize(
    ("content", "request_id", "complaint"),
    [
        ({"kind": "nope", "request_id": "x"}, "x", "kind"),
        ({"kind": "snapshot"}, None, "request_id"),
        ({"kind": "send", "request_id": "x"}, "x", "text"),
        ({"kind": "send", "request_id": "x", "text": ""}, "x", "text"),
        ({"kind": "send", "request_id": "x", "text": 5}, "x", "text"),
        ({"kind": "snapshot", "request_id": "x", "extra": 1}, "x", "extra"),
        ("snapshot please", None, "invalid request"),
        (None, None, "invalid request"),
    ],
)
def test_bad_requests_get_an_error_reply_not_an_exception(
    runtime: Runtime, content: Any, request_id: str | None, complaint: str
) -> None:
    view = open_view(agent_with_rules(runtime), runtime)
    reply = view.ask(content)
    assert reply["kind"] == "error"
    assert reply["request_id"] == request_id
    assert complaint in reply["message"].lower()


def test_static_fallback_shows_the_conversation_escaped(runtime: Runtime) -> None:
    agent = agent_with_rules(
        runtime, Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}])
    )
    runtime.engine.run(agent.run("show files <b>now</b>"))
    view = open_view(agent, runtime)
    data = mimebundle(view.widget)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id
    html = data["text/html"]
    assert "show files &lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html
    assert "<code>list_files</code>" in html
    assert "Turn 1 · 1 tools" in html and "Turn 2 · 0 tools" in html
    text = data["text/plain"]
    assert f"Chat {agent.chat_id} · awaiting input · 2 turns" in text
    assert "user: show files <b>now</b>" in text
    assert "tool list_files({}) ->" in text
    assert "assistant: [simulator]" in text


def test_close_unsubscribes_from_the_bus(runtime: Runtime) -> None:
    agent = agent_with_rules(runtime)
    before = len(runtime.bus._subscriptions)
    view = open_view(agent, runtime)
    assert len(runtime.bus._subscriptions) == before + 1
    view.widget.close()
    assert len(runtime.bus._subscriptions) == before
    view.widget.close()  # closing twice is harmless


def test_message_turns_follow_the_answered_model_calls() -> None:
    history = [
        {"role": "system"},
        {"role": "user"},
        {"role": "assistant"},  # turn 1 asks for a tool
        {"role": "tool"},
        # turn 2's model call failed: no answer; the follow-up starts turn 3
        {"role": "user"},
        {"role": "assistant"},
        {"role": "user"},  # a follow-up not yet answered
    ]
    assert message_turns(history, [1, 3]) == [0, 1, 1, 1, 3, 3, 4]
    assert message_turns(history, []) == [0, 1, 1, 1, 2, 2, 3]  # no traces: count on


def test_widget_points_at_the_built_bundle(runtime: Runtime) -> None:
    from boonb.widgets.common import STATIC

    if not (STATIC / "chat.js").is_file():
        pytest.skip("the JS bundle is not built (npm run build in labextension/)")
    view = open_view(agent_with_rules(runtime), runtime)
    assert "export" in str(view.widget._esm) and "boonb-chat" in str(view.widget._css)


# The %%agent cell as a user runs it: in a kernel (a frontend shows the chat view) and in
# terminal IPython (no widgets). The simulator's answer is scripted so it can be looked for.

ANSWER = "Paris is the capital of France <since 508>."
AGENT_SETUP = (
    "%load_ext boonb\n"
    "from boonb.runtime import get_runtime\n"
    "from boonb.sim import Rule\n"
    "sim = get_runtime().simulator()\n"
    "sim.clear_rules()\n"
    f"sim.add_rule(Rule('capital', reply={ANSWER!r}))\n"
)
QUESTION = "What is the capital of France?"
PROMPT_CELL = f"%%agent --tools none\n{QUESTION}"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def iopub_of(kernel: Kernel, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Every iopub message a cell caused, in order, up to its idle status."""
    msg_id = kernel.client.execute(code)
    messages: list[dict[str, Any]] = []
    while True:
        try:
            msg = kernel.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output for {timeout}s; so far {messages}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


@pytest.mark.slow
def test_agent_cell_in_a_kernel_answers_in_the_chat_view_only_and_saves_the_finished_chat(
    project: Path,
) -> None:
    kernel = Kernel(project)
    try:
        setup = iopub_of(kernel, AGENT_SETUP)
        assert not [m for m in setup if m["msg_type"] == "error"], setup
        messages = iopub_of(kernel, PROMPT_CELL)
    finally:
        kernel.stop()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for msg in messages:
        by_type.setdefault(msg["msg_type"], []).append(msg["content"])
    assert "error" not in by_type, by_type["error"]
    streamed = "".join(c["text"] for c in by_type.get("stream", []))
    assert "Paris" not in streamed  # the chat view is the output: no second copy as text

    # The chat, then the empty slot its subagents' pane fills if its agent spawns any.
    shown, slot = by_type["display_data"]
    assert slot["data"] == {"text/plain": ""}
    assert WIDGET_VIEW in shown["data"]
    display_id = shown["transient"]["display_id"]
    assert "· 0 turns" in shown["data"]["text/plain"]  # displayed before the run

    # Once the run ended, the same output was updated: its fallback is the finished chat.
    updates = [
        c for c in by_type["update_display_data"] if c["transient"]["display_id"] == display_id
    ]
    assert updates, by_type.keys()
    final = updates[-1]["data"]
    assert final[WIDGET_VIEW] == shown["data"][WIDGET_VIEW]  # still the same live view
    assert "awaiting input · 1 turn\n" in final["text/plain"]
    assert f"assistant: {ANSWER}" in final["text/plain"]
    assert f"user: {QUESTION}" in final["text/plain"]
    assert html.escape(ANSWER) in final["text/html"] and ANSWER not in final["text/html"]

    (result,) = by_type["execute_result"]  # the run's one-line summary still follows
    assert "1 turn" in result["data"]["text/plain"]


@pytest.mark.slow
def test_a_failed_agent_cell_in_a_kernel_still_saves_the_chat_as_it_ended(project: Path) -> None:
    kernel = Kernel(project)
    try:
        iopub_of(kernel, AGENT_SETUP + "from boonb.sim import Fault\n")
        iopub_of(kernel, "sim.inject(Fault.malformed_stream(), times=20)")
        messages = iopub_of(kernel, PROMPT_CELL)
    finally:
        kernel.stop()
    stderr = "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
    assert "boonb: " in stderr, messages  # the run failed, and said so
    shown, slot = [m["content"] for m in messages if m["msg_type"] == "display_data"]
    assert slot["data"] == {"text/plain": ""}  # no subagents: their pane's slot stays empty
    updates = [m["content"] for m in messages if m["msg_type"] == "update_display_data"]
    assert [u["transient"]["display_id"] for u in updates] == [shown["transient"]["display_id"]]
    assert f"user: {QUESTION}" in updates[0]["data"]["text/plain"]


@pytest.mark.slow
def test_agent_cell_in_terminal_ipython_streams_the_answer_as_text(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOONB_")}
    env.pop("DEEPSEEK_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    env["BOONB_PROJECT"] = str(project)
    script = project / "run_agent.ipy"
    # A script runs as one cell, so the cell magic is called as a cell of its own would be.
    script.write_text(
        AGENT_SETUP + f"get_ipython().run_cell_magic('agent', '--tools none', {QUESTION!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", str(script)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(ANSWER) == 1, done.stdout  # streamed once, no chat view
    assert "application/vnd.jupyter.widget-view+json" not in done.stdout


# Images: uploads and thumbnails as binary buffers of the comm messages, follow-ups with
# images, and messages that show them.


def png_bytes(size: tuple[int, int] = (1200, 800), color: str = "orange") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


class BinaryView:
    """A ChatView whose messages carry binary buffers both ways, as the comm does."""

    def __init__(self, widget: ChatView) -> None:
        self.widget = widget
        self.replies: queue.Queue[tuple[dict[str, Any], list[bytes]]] = queue.Queue()

        def capture(content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
            if content["kind"] != "frame":
                self.replies.put((content, [bytes(b) for b in buffers or []]))

        widget.send = capture

    def ask(
        self, content: dict[str, Any], buffers: list[Any] | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Deliver a message with its buffers, and wait for the reply to its request id."""
        self.widget._handle_msg(
            {
                "content": {"data": {"method": "custom", "content": content}},
                "buffers": buffers or [],
            }
        )
        while True:
            reply, got = self.replies.get(timeout=20)
            if reply.get("request_id") == content.get("request_id"):
                return reply, got

    def upload(
        self, data: bytes, name: str = "plot.png", *, chunk: int = 1 << 22
    ) -> dict[str, Any]:
        """Upload as the view does: chunk after chunk, each once the last was acknowledged."""
        offset = 0
        while True:
            request = {
                "kind": "upload",
                "request_id": f"u-{name}-{offset}",
                "upload_id": f"up-{name}",
                "name": name,
                "size": len(data),
                "offset": offset,
            }
            reply, _ = self.ask(request, [memoryview(data)[offset : offset + chunk]])
            if reply["kind"] == "error" or reply["attachment"] is not None:
                return reply
            assert reply["received"] > offset, reply
            offset = reply["received"]


def stored_files(runtime: Runtime) -> list[Path]:
    folder = Path(runtime.settings.project) / ".boonb" / "attachments"
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.exists() else []


def test_upload_from_a_binary_buffer_stores_the_image_and_replies_its_reference(
    runtime: Runtime,
) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    data = png_bytes()
    reply = view.upload(data)
    assert reply["kind"] == "upload", reply
    ref = reply["attachment"]
    assert ref["sha256"] == hashlib.sha256(data).hexdigest()
    assert (ref["mime"], ref["width"], ref["height"], ref["name"]) == (
        "image/png",
        1200,
        800,
        "plot.png",
    )
    assert [p.read_bytes() for p in stored_files(runtime)] == [data]


@pytest.mark.parametrize(
    ("data", "name", "complaint"),
    [
        (b"%PDF-1.7\n" + b"0" * 2000, "report.png", "pdf"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "logo.png", "svg"),
        (png_bytes()[:200], "cut.png", "png"),
    ],
)
def test_upload_of_a_file_that_is_no_supported_image_is_refused_and_nothing_is_stored(
    runtime: Runtime, data: bytes, name: str, complaint: str
) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    reply = view.upload(data, name)
    assert reply["kind"] == "error" and reply["request_id"].startswith(f"u-{name}")
    assert complaint in reply["message"].lower()
    assert stored_files(runtime) == []


def test_upload_larger_than_the_limit_is_refused_from_its_declared_size(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    data = png_bytes()
    request = {
        "kind": "upload",
        "request_id": "big",
        "upload_id": "big",
        "name": "big.png",
        "size": 30 << 20,
    }
    reply, _ = view.ask(request, [memoryview(data)])  # the first chunk: refused before the rest
    assert reply["kind"] == "error" and "limit is 20 MB" in reply["message"]
    assert stored_files(runtime) == []


def test_upload_without_a_buffer_is_refused_with_what_to_do(runtime: Runtime) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    request = {"kind": "upload", "request_id": "u", "upload_id": "u", "name": "a.png", "size": 10}
    reply, _ = view.ask(request)
    assert reply["kind"] == "error" and "attach it again" in reply["message"]


def test_upload_in_chunks_is_stored_whole_once_the_last_chunk_is_in(runtime: Runtime) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    data = png_bytes((1500, 1000))
    chunk = len(data) // 3 + 1
    reply = view.upload(data, chunk=chunk)
    assert reply["kind"] == "upload" and reply["received"] == len(data)
    assert reply["attachment"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert [p.read_bytes() for p in stored_files(runtime)] == [data]
    staged = Path(runtime.settings.upload_dir or api.attachments(runtime).upload_dir)
    assert not list(staged.glob("boonb-upload-*"))  # the chunks' staged file is gone


def test_a_chunk_out_of_order_drops_the_upload_and_says_to_attach_again(
    runtime: Runtime,
) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    data = png_bytes()
    first = {"kind": "upload", "upload_id": "x", "name": "a.png", "size": len(data)}
    reply, _ = view.ask({**first, "request_id": "1", "offset": 0}, [data[:1000]])
    assert (reply["received"], reply["attachment"]) == (1000, None)
    reply, _ = view.ask({**first, "request_id": "2", "offset": 5000}, [data[5000:6000]])
    assert reply["kind"] == "error" and "out of order" in reply["message"]
    assert "attach it again" in reply["message"]
    reply, _ = view.ask({**first, "request_id": "3", "offset": 1000}, [data[1000:]])
    assert reply["kind"] == "error" and "not open" in reply["message"]
    assert stored_files(runtime) == []


def test_follow_up_with_images_sends_the_uploaded_bytes_and_shows_them_in_the_chat(
    runtime: Runtime,
) -> None:
    agent = agent_with_rules(runtime, tools=[])
    view = BinaryView(ChatView(agent=agent, runtime=runtime))
    runtime.engine.run(agent.run("hello"))
    first, second = png_bytes(color="orange"), png_bytes((300, 500), color="teal")
    refs = [view.upload(first, "a.png")["attachment"], view.upload(second, "b.png")["attachment"]]
    send = {"kind": "send", "request_id": "f", "text": "what is this?", "images": refs}
    reply, _ = view.ask(send)
    assert reply == {"kind": "send", "request_id": "f", "turn_number": 2}
    run = view.widget._run
    assert run is not None
    run.result(10)
    sent = runtime.simulator().requests[-1]["messages"]
    parts = [p for m in sent if isinstance(m["content"], list) for p in m["content"]]
    uris = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert [base64.b64decode(u.partition(",")[2]) for u in uris] == [first, second]
    snap, _ = view.ask({"kind": "snapshot", "request_id": "s"})
    user = [m for m in snap["messages"] if m["role"] == "user"][-1]
    assert user["content"] == "what is this?"
    assert [r["sha256"] for r in user["images"]] == [r["sha256"] for r in refs]
    assert snap["max_attachment_bytes"] == 20 << 20


def test_message_complete_frame_of_a_user_message_carries_its_images(runtime: Runtime) -> None:
    agent = agent_with_rules(runtime, tools=[])
    view = View(ChatView(agent=agent, runtime=runtime))
    ref = api.attachments(runtime).add_bytes(png_bytes(), name="plot.png")
    runtime.engine.run(agent.run("look", images=[ref]))
    users = [
        f["message"]
        for f in view.frames()
        if f["frame"]["type"] == "message:complete" and f["frame"]["role"] == "user"
    ]
    assert [(m["content"], m["images"]) for m in users] == [
        ("look", [ref.model_dump(mode="json")])
    ]


def test_thumbnail_is_a_binary_buffer_at_most_600_wide_and_the_full_image_is_the_file(
    runtime: Runtime,
) -> None:
    from PIL import Image

    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    data = png_bytes((1200, 800))
    ref = view.upload(data)["attachment"]
    request = {"kind": "image", "request_id": "t", "attachment": ref, "max_width": 600}
    reply, buffers = view.ask(request)
    assert reply == {
        "kind": "image",
        "request_id": "t",
        "sha256": ref["sha256"],
        "mime": "image/png",
        "width": 600,
        "height": 400,
    }
    assert Image.open(io.BytesIO(buffers[0])).size == (600, 400)
    full, buffers = view.ask({"kind": "image", "request_id": "f", "attachment": ref})
    assert (full["width"], full["height"]) == (1200, 800) and buffers == [data]


def test_image_whose_file_was_deleted_gets_an_error_saying_to_attach_it_again(
    runtime: Runtime,
) -> None:
    view = BinaryView(ChatView(agent=agent_with_rules(runtime), runtime=runtime))
    ref = view.upload(png_bytes())["attachment"]
    for path in stored_files(runtime):
        path.unlink()
    reply, buffers = view.ask(
        {"kind": "image", "request_id": "t", "attachment": ref, "max_width": 600}
    )
    assert reply["kind"] == "error" and "attach the image again" in reply["message"]
    assert buffers == []


def test_follow_up_with_an_image_to_a_text_only_model_is_refused_and_the_chat_unchanged(
    runtime: Runtime,
) -> None:
    from boonb.providers import Capabilities, ChatClient, get_profile

    agent = agent_with_rules(runtime, tools=[])
    runtime.engine.run(agent.run("hello"))
    agent.client = ChatClient(
        get_profile("sim").with_overrides(
            base_url=agent.client.profile.base_url,
            capabilities={"sim-chat": Capabilities(tools=True, vision=False, reasoning=False)},
        ),
        max_retries=0,
    )
    view = BinaryView(ChatView(agent=agent, runtime=runtime))
    ref = view.upload(png_bytes())["attachment"]
    before = list(agent.messages)
    reply, _ = view.ask({"kind": "send", "request_id": "f", "text": "see?", "images": [ref]})
    assert reply["kind"] == "error" and reply["message"].startswith("not sent: ")
    assert "cannot read images" in reply["message"]
    assert agent.messages == before and view.widget._run is None
    again, _ = view.ask({"kind": "send", "request_id": "g", "text": "just text"})
    assert again["kind"] == "send"


def test_a_saved_chat_shows_its_images_from_the_store_and_names_them_in_the_fallback(
    runtime: Runtime,
) -> None:
    agent = agent_with_rules(runtime, tools=[])
    ref = api.attachments(runtime).add_bytes(png_bytes(), name="plot.png")
    runtime.engine.run(agent.run("look", images=[ref]))
    del runtime.chats[agent.chat_id]  # as in a new kernel that has not resumed it
    del runtime.savers[agent.chat_id]
    view = BinaryView(ChatView(agent.chat_id, runtime=runtime))
    snap, _ = view.ask({"kind": "snapshot", "request_id": "s"})
    user = [m for m in snap["messages"] if m["role"] == "user"][0]
    assert (user["content"], user["images"]) == ("look", [ref.model_dump(mode="json")])
    text = mimebundle(view.widget)["text/plain"]
    assert "[1 image: plot.png (1200×800)]" in text
    thumb, buffers = view.ask(
        {"kind": "image", "request_id": "t", "attachment": user["images"][0], "max_width": 600}
    )
    assert thumb["kind"] == "image" and len(buffers) == 1
