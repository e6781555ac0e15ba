from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from boonb.frames import (
    CacheSegment,
    MessageDelta,
    ModelCallComplete,
    ToolTraceComplete,
    ToolTraceStart,
    frame_adapter,
)
from boonb.runtime import Runtime
from boonb.store.projections import TimelineEntry, TurnTotals, timeline, turns
from boonb.widgets import ChatIdError, TraceViewer
from tests.conftest import T0, make_trace


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime()
    yield rt
    rt.shutdown()


class Viewer:
    """A TraceViewer whose outgoing custom messages are captured."""

    def __init__(self, widget: TraceViewer) -> None:
        self.widget = widget
        self.sent: list[dict[str, Any]] = []
        original = widget.send

        def capture(content: dict[str, Any], buffers: object = None) -> None:
            self.sent.append(content)
            original(content, buffers)

        widget.send = capture  # type: ignore[method-assign]

    def ask(self, content: Any) -> dict[str, Any]:
        """Deliver a message as the comm does, and return the one reply it caused."""
        before = len(self.sent)
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )
        assert len(self.sent) == before + 1
        return self.sent[-1]


@pytest.fixture
def chat_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def viewer(runtime: Runtime, chat_id: uuid.UUID) -> Iterator[Viewer]:
    widget = TraceViewer(chat_id, runtime=runtime)
    yield Viewer(widget)
    widget.close()


def seed(runtime: Runtime, chat_id: uuid.UUID, count: int, *, per_turn: int = 10) -> None:
    for i in range(count):
        runtime.store.writer.enqueue(
            ToolTraceComplete(trace=make_trace(chat_id=chat_id, turn=i // per_turn, seconds=i))
        )
    runtime.store.writer.flush()


def test_page_requests_return_the_stores_pages_and_cursors(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    seed(runtime, chat_id, 120)
    seed(runtime, uuid.uuid4(), 5)  # another chat's traces never show up
    cursor = None
    seen: list[str] = []
    for number in range(3):
        reply = viewer.ask(
            {"kind": "page", "request_id": f"p{number}", "cursor": cursor, "limit": 50}
        )
        expected = runtime.store.traces.page(chat_id, cursor, 50).model_dump(mode="json")
        assert reply["kind"] == "page"
        assert reply["request_id"] == f"p{number}"
        assert reply["traces"] == expected["traces"]
        assert reply["next_cursor"] == expected["next_cursor"]
        seen += [t["id"] for t in reply["traces"]]
        cursor = reply["next_cursor"]
    assert cursor is None
    assert len(seen) == len(set(seen)) == 120
    assert all(t["chat_id"] == str(chat_id) for t in reply["traces"])


def test_page_request_sees_traces_enqueued_a_moment_ago(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    runtime.store.writer.enqueue(ToolTraceComplete(trace=make_trace(chat_id=chat_id)))
    reply = viewer.ask({"kind": "page", "request_id": "r", "cursor": None, "limit": 10})
    assert len(reply["traces"]) == 1  # the widget flushes the writer before reading


def test_cache_request_returns_turn_cache_and_chat_totals(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    segments = [
        CacheSegment(segment="system", tokens=800, hit_tokens=800, miss_tokens=0, hash="a"),
        CacheSegment(segment="history", tokens=200, hit_tokens=0, miss_tokens=200, hash="b"),
    ]
    model = make_trace(
        chat_id=chat_id,
        turn=1,
        kind="model",
        tool_name="sim-model",
        input_tokens=1000,
        cache_tokens=800,
        cache_miss_tokens=200,
        output_tokens=50,
        tokens_used=1050,
        latency_ms=900.0,
    )
    runtime.store.writer.enqueue(ModelCallComplete(trace=model, cache=segments))
    runtime.store.writer.enqueue(
        ToolTraceComplete(
            trace=make_trace(chat_id=chat_id, turn=1, outcome="error", error="boom", seconds=1)
        )
    )
    reply = viewer.ask({"kind": "cache", "request_id": "c1"})
    assert reply["kind"] == "cache" and reply["request_id"] == "c1"
    [turn] = reply["turns"]
    assert turn["turn_number"] == 1
    assert (turn["input_tokens"], turn["cache_tokens"]) == (1000, 800)
    assert [s["segment"] for s in turn["segments"]] == ["system", "history"]
    totals = reply["totals"]
    assert totals == runtime.store.traces.chat_totals(chat_id).model_dump(mode="json")
    assert (totals["traces"], totals["errors"], totals["tokens_used"]) == (2, 1, 1050)


def projected(runtime: Runtime, chat_id: uuid.UUID, turn: int) -> dict[str, Any]:
    """The projections of one turn's stored calls, as JSON (what the view must be sent)."""
    calls = [c for c in runtime.store.traces.chat_calls(chat_id) if c.turn_number == turn]
    [totals] = turns(calls)
    return {
        "totals": TypeAdapter(TurnTotals).dump_python(totals, mode="json"),
        "timeline": TypeAdapter(list[TimelineEntry]).dump_python(timeline(calls), mode="json"),
    }


def seed_turns(runtime: Runtime, chat_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Two turns: a model call and two parallel tool calls it asked for, then one more."""
    model = make_trace(
        chat_id=chat_id, kind="model", tool_name="sim-model", input_tokens=1000,
        cache_tokens=400, output_tokens=100, tokens_used=1100, latency_ms=900.0,
    )  # fmt: skip
    # Both tools start at 1 s and run side by side (1 s .. 1.3 s, 1.1 s .. 2.6 s).
    fast = make_trace(chat_id=chat_id, seconds=1, tool_name="list", parent_id=model.id,
                      latency_ms=300.0)  # fmt: skip
    slow = make_trace(chat_id=chat_id, seconds=1.1, tool_name="grep", parent_id=model.id,
                      latency_ms=1500.0, outcome="error", error="boom")  # fmt: skip
    second = make_trace(chat_id=chat_id, turn=1, seconds=10, kind="model", tool_name="m",
                        input_tokens=2000, output_tokens=50, tokens_used=2050)  # fmt: skip
    for trace in (model, fast, slow, second):
        runtime.store.writer.enqueue(ToolTraceComplete(trace=trace))
    runtime.store.writer.flush()
    return {"model": model.id, "fast": fast.id, "slow": slow.id, "second": second.id}


def test_a_page_carries_the_projected_figures_of_each_turn_it_holds(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    ids = seed_turns(runtime, chat_id)
    # A page of two rows cuts turn 0 in half: its figures still count all of its calls.
    first = viewer.ask({"kind": "page", "request_id": "p1", "cursor": None, "limit": 2})
    [turn0] = first["turns"]
    assert turn0 == {**projected(runtime, chat_id, 0), "span_ms": 2600.0}
    totals = turn0["totals"]
    assert (totals["model_calls"], totals["tool_calls"], totals["errors"]) == (1, 2, 1)
    assert (totals["tokens_used"], totals["cache_tokens"], totals["latency_ms"]) == (
        1100, 400, 2700.0,
    )  # fmt: skip
    offsets = {e["id"]: (e["offset_ms"], e["duration_ms"]) for e in turn0["timeline"]}
    assert offsets[str(ids["fast"])] == (1000.0, 300.0)
    assert offsets[str(ids["slow"])] == (1100.0, 1500.0)  # overlaps the fast one

    rest = viewer.ask(
        {"kind": "page", "request_id": "p2", "cursor": first["next_cursor"], "limit": 10}
    )
    assert [t["totals"]["turn_number"] for t in rest["turns"]] == [0, 1]
    assert rest["turns"][0] == turn0
    assert rest["turns"][1]["totals"] == projected(runtime, chat_id, 1)["totals"]


def test_a_completed_call_is_sent_with_its_turns_new_figures(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    ids = seed_turns(runtime, chat_id)
    viewer.ask({"kind": "page", "request_id": "p", "cursor": None, "limit": 50})
    late = make_trace(chat_id=chat_id, seconds=3, tool_name="late", parent_id=ids["model"],
                      latency_ms=500.0)  # fmt: skip
    start = ToolTraceStart(
        trace_id=late.id, session_id=late.session_id, chat_id=chat_id, turn_number=0,
        tool_name="late", parent_id=ids["model"], started_at=late.started_at,
    )  # fmt: skip
    runtime.bus.publish(start)
    runtime.bus.publish(ToolTraceComplete(trace=late))
    started, completed = viewer.sent[-2:]
    assert started["turn"] is None  # a running call is in no figure yet
    runtime.store.writer.flush()
    assert completed["turn"] == {**projected(runtime, chat_id, 0), "span_ms": 3500.0}
    assert completed["turn"]["totals"]["tool_calls"] == 3


def test_a_turn_not_read_yet_gets_its_figures_when_the_view_asks(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    seed_turns(runtime, chat_id)
    # The widget has not read turn 0 (no page yet): figures over the live call alone would
    # be wrong, and the publishing thread must not wait on the disk, so none are sent.
    runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat_id, seconds=5)))
    assert viewer.sent[-1]["kind"] == "frame" and viewer.sent[-1]["turn"] is None
    reply = viewer.ask({"kind": "turns", "request_id": "t", "turn_numbers": [0, 7, 0]})
    assert reply["kind"] == "turns" and reply["request_id"] == "t"
    [turn0] = reply["turns"]  # turn 7 has no calls; turn 0 is asked for twice
    assert turn0["totals"] == projected(runtime, chat_id, 0)["totals"]
    assert turn0["totals"]["tool_calls"] == 3
    # Read now: the next call of the turn comes with its figures.
    runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat_id, seconds=6)))
    assert viewer.sent[-1]["turn"]["totals"]["tool_calls"] == 4


def test_a_turn_without_model_or_tool_calls_has_no_figures(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    agent = make_trace(chat_id=chat_id, turn=4, kind="agent", tool_name="helper")
    runtime.store.writer.enqueue(ToolTraceComplete(trace=agent))
    page = viewer.ask({"kind": "page", "request_id": "p", "cursor": None, "limit": 50})
    assert [t["id"] for t in page["traces"]] == [str(agent.id)]
    assert page["turns"] == []


def test_figures_hold_no_inputs_or_outputs_of_the_calls(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    viewer.ask({"kind": "page", "request_id": "p", "cursor": None, "limit": 50})
    big = make_trace(chat_id=chat_id, output="x" * 1_000_000)
    runtime.bus.publish(ToolTraceComplete(trace=big))
    held = viewer.widget._calls._by_turn[0][big.id]
    assert (held.input, held.output) == (None, None)
    assert held.latency_ms == big.latency_ms


@pytest.mark.parametrize(
    ("content", "request_id", "complaint"),
    [
        ({"kind": "nope", "request_id": "x"}, "x", "kind"),
        ({"kind": "page"}, None, "request_id"),
        ({"kind": "page", "request_id": "x", "limit": 0}, "x", "limit"),
        ({"kind": "page", "request_id": "x", "limit": 500}, "x", "limit"),
        ({"kind": "page", "request_id": "x", "limit": "10"}, "x", "limit"),
        ({"kind": "page", "request_id": "x", "limit": True}, "x", "limit"),
        ({"kind": "page", "request_id": "x", "cursor": "not-a-cursor"}, "x", "cursor"),
        ({"kind": "page", "request_id": "x", "extra": 1}, "x", "extra"),
        ({"kind": "detail", "request_id": "x"}, "x", "trace_id"),
        ({"kind": "detail", "request_id": "x", "trace_id": "not-a-uuid"}, "x", "trace_id"),
        ({"kind": "turns", "request_id": "x", "turn_numbers": []}, "x", "turn_numbers"),
        ({"kind": "turns", "request_id": "x", "turn_numbers": [-1]}, "x", "turn_numbers"),
        ({"kind": "turns", "request_id": "x", "turn_numbers": ["1"]}, "x", "turn_numbers"),
        (
            {"kind": "turns", "request_id": "x", "turn_numbers": list(range(101))},
            "x",
            "turn_numbers",
        ),
        ("page please", None, "invalid request"),
        (None, None, "invalid request"),
    ],
)
def test_bad_requests_get_an_error_reply_not_an_exception(
    viewer: Viewer, content: Any, request_id: str | None, complaint: str
) -> None:
    reply = viewer.ask(content)
    assert reply["kind"] == "error"
    assert reply["request_id"] == request_id
    assert complaint in reply["message"].lower()


FIFTY_MB = 50 * 1024 * 1024


def test_a_page_previews_a_50_mb_output_and_its_detail_brings_the_whole_value(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    output = "0123456789abcdef\n" * (FIFTY_MB // 17)
    big = make_trace(chat_id=chat_id, output=output)
    runtime.store.writer.enqueue(ToolTraceComplete(trace=big))
    for i in range(1, 50):
        runtime.store.writer.enqueue(
            ToolTraceComplete(trace=make_trace(chat_id=chat_id, seconds=i, output=output[:9_000]))
        )
    page = viewer.ask({"kind": "page", "request_id": "p", "cursor": None, "limit": 50})
    assert len(page["traces"]) == 50
    assert len(json.dumps(page).encode()) < 400_000  # what goes over the comm
    first = page["traces"][0]
    assert first["output"] is None and first["output_cut"]["kind"] == "string"
    assert output.startswith(first["output_cut"]["preview"])

    detail = viewer.ask({"kind": "detail", "request_id": "d", "trace_id": str(big.id)})
    assert detail["kind"] == "detail" and detail["request_id"] == "d"
    assert detail["trace"]["output"] == output
    assert detail["request"] is None


def test_detail_of_a_trace_outside_the_chat_is_an_error_reply(
    viewer: Viewer, runtime: Runtime
) -> None:
    elsewhere = make_trace(chat_id=uuid.uuid4())
    runtime.store.writer.enqueue(ToolTraceComplete(trace=elsewhere))
    for trace_id in (elsewhere.id, uuid.uuid4()):
        reply = viewer.ask({"kind": "detail", "request_id": "d", "trace_id": str(trace_id)})
        assert reply["kind"] == "error" and reply["request_id"] == "d"
        assert f"no trace {trace_id}" in reply["message"]


def test_live_frames_of_this_chat_are_forwarded_and_others_are_not(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    other = uuid.uuid4()
    mine = make_trace(chat_id=chat_id, turn=2)
    start = ToolTraceStart(
        trace_id=mine.id,
        session_id=mine.session_id,
        chat_id=chat_id,
        turn_number=2,
        tool_name="read_file",
        input={"path": "a.txt"},
        started_at=T0,
    )
    frames = [
        start,
        ToolTraceComplete(trace=mine),
        ModelCallComplete(trace=make_trace(chat_id=chat_id, kind="model", tool_name="m")),
        ToolTraceStart(
            trace_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            chat_id=other,
            turn_number=0,
            tool_name="x",
            started_at=T0,
        ),
        ToolTraceComplete(trace=make_trace(chat_id=other)),
        ModelCallComplete(trace=make_trace(chat_id=other, kind="model", tool_name="m")),
        MessageDelta(chat_id=chat_id, turn_number=2, text="hello"),  # not a trace frame
    ]
    for frame in frames:
        runtime.bus.publish(frame)
    assert [m["kind"] for m in viewer.sent] == ["frame"] * 3
    assert [m["frame"]["type"] for m in viewer.sent] == [
        "tool_trace:start",
        "tool_trace:complete",
        "model_call:complete",
    ]
    assert viewer.sent[0]["frame"]["trace_id"] == str(mine.id)
    sent = frame_adapter.dump_python(ToolTraceComplete(trace=mine), mode="json")
    assert viewer.sent[1]["frame"] == sent


def test_close_unsubscribes_from_the_bus(runtime: Runtime, chat_id: uuid.UUID) -> None:
    before = len(runtime.bus._subscriptions)
    viewer = Viewer(TraceViewer(chat_id, runtime=runtime))
    assert len(runtime.bus._subscriptions) == before + 1
    viewer.widget.close()
    assert len(runtime.bus._subscriptions) == before
    runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat_id)))
    assert viewer.sent == []
    viewer.widget.close()  # closing twice is harmless


def test_static_fallback_shows_the_chats_numbers(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    writer = runtime.store.writer
    for turn, (inp, hit) in enumerate([(1000, 0), (2000, 1500)]):
        writer.enqueue(
            ModelCallComplete(
                trace=make_trace(
                    chat_id=chat_id,
                    turn=turn,
                    seconds=turn * 10,
                    kind="model",
                    tool_name="sim-model",
                    input_tokens=inp,
                    cache_tokens=hit,
                    output_tokens=100,
                    tokens_used=inp + 100,
                    latency_ms=800.0,
                )
            )
        )
    writer.enqueue(
        ToolTraceComplete(
            trace=make_trace(chat_id=chat_id, tool_name="slow_tool", latency_ms=6200.0, seconds=1)
        )
    )
    writer.enqueue(
        ToolTraceComplete(
            trace=make_trace(
                chat_id=chat_id,
                turn=1,
                seconds=11,
                tool_name="<bad>",
                outcome="error",
                error="file <missing>",
            )
        )
    )
    data, _metadata = viewer.widget._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.widget.model_id
    html = data["text/html"]
    assert "<th style='text-align:left'>Turns</th><td>2</td>" in html
    assert "4 (2 model, 2 tool)" in html
    assert "3.2K" in html  # tokens used: 1100 + 2100
    assert "50% (1.5K/3K tokens)" in html  # cache hit rate: 1500 of 3000 prompt tokens
    assert html.index("slow_tool") < html.index("sim-model")  # slowest first
    assert "6.2 s" in html
    assert "&lt;bad&gt;" in html and "file &lt;missing&gt;" in html and "<bad>" not in html
    text = data["text/plain"]
    assert "turns 2" in text and "errors 1" in text and "slowest: slow_tool 6.2 s" in text


def test_static_fallback_nests_calls_and_the_chats_they_started(
    viewer: Viewer, runtime: Runtime, chat_id: uuid.UUID
) -> None:
    writer = runtime.store.writer
    child = uuid.uuid4()
    model = make_trace(chat_id=chat_id, kind="model", tool_name="sim-model", tokens_used=1500)
    helper = make_trace(chat_id=chat_id, seconds=1, tool_name="ask_helper", parent_id=model.id)
    inner = make_trace(
        chat_id=child, seconds=2, kind="model", tool_name="<inner>", parent_id=helper.id,
        root_id=chat_id, outcome="error", error="boom",
    )  # fmt: skip
    after = make_trace(chat_id=chat_id, turn=1, seconds=3, kind="model", tool_name="final")
    for trace in (model, helper, inner, after):
        writer.enqueue(ToolTraceComplete(trace=trace))
    data, _metadata = viewer.widget._repr_mimebundle_()
    html = data["text/html"]
    calls = html[html.index("boonb-traces-tree") :]
    # The tool call's item opens inside the model call's, the child chat's inside the tool's.
    model_at, helper_at, inner_at = (
        calls.index(n) for n in ("sim-model", "ask_helper", "&lt;inner&gt;")
    )
    assert model_at < helper_at < inner_at < calls.index("final")
    assert calls[model_at:helper_at].count("<ul") == 1 and "</li>" not in calls[model_at:helper_at]
    assert calls[helper_at:inner_at].count("<ul") == 1 and "</li>" not in calls[helper_at:inner_at]
    assert "<strong>error</strong>" in calls and "<inner>" not in html
    assert "1.5K tokens" in calls
    text = data["text/plain"].splitlines()
    start = text.index("  calls:")
    assert [line.split(" · ")[:2] for line in text[start + 1 :]] == [
        ["    model", "sim-model"],
        ["      tool", "ask_helper"],
        ["        model", "<inner>"],
        ["    model", "final"],
    ]


def test_chat_defaults_to_the_last_chat_and_a_missing_one_is_a_clear_error(
    runtime: Runtime,
) -> None:
    with pytest.raises(ChatIdError, match="no agent has run"):
        TraceViewer(runtime=runtime)
    with pytest.raises(ChatIdError, match="UUID"):
        TraceViewer("chat-1", runtime=runtime)
    runtime.last_chat_id = uuid.uuid4()
    widget = TraceViewer(runtime=runtime)
    try:
        assert widget.chat_id == str(runtime.last_chat_id)
    finally:
        widget.close()


def test_widget_points_at_the_built_bundle() -> None:
    from boonb.widgets.common import STATIC

    if not (STATIC / "traceviewer.js").is_file():
        pytest.skip("the JS bundle is not built (npm run build in labextension/)")
    widget = TraceViewer(uuid.uuid4(), runtime=Runtime())
    try:
        assert "export" in widget._esm and "boonb-traceviewer" in widget._css
    finally:
        widget.close()


@pytest.mark.slow
def test_traces_magic_in_terminal_ipython_prints_the_summary(tmp_path: Path) -> None:
    code = (
        "%load_ext boonb\n"
        "%traces\n"
        "from boonb.runtime import get_runtime\n"
        "from boonb.frames import ToolTraceComplete\n"
        "from tests.conftest import make_trace\n"
        "import uuid\n"
        "chat = uuid.uuid4()\n"
        "get_runtime().store.writer.enqueue(ToolTraceComplete(trace=make_trace(chat_id=chat)))\n"
        "get_ipython().run_line_magic('traces', str(chat))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOONB_")}
    environment.update(BOONB_PROJECT=str(tmp_path), PYTHONPATH=str(Path(__file__).parents[1]))
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no agent has run in this kernel yet" in result.stderr
    assert "Traces of chat" in result.stdout
    assert "calls 1 (0 model, 1 tool)" in result.stdout
