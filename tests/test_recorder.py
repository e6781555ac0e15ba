from __future__ import annotations

import uuid

from boonb.agent.recorder import Recorder
from boonb.bus import Bus
from boonb.frames import ErrorFrame, Frame, ToolTraceComplete, ToolTraceStart
from boonb.store import STORED_FRAME_TYPES


def _record_one(recorder: Recorder) -> None:
    trace = recorder.open(2)
    recorder.tool_started(trace, name="read_file", call_id="c1", arguments={"path": "a"})
    recorder.tool_finished(
        trace, name="read_file", call_id="c1", arguments={"path": "a"}, output="x",
        outcome="success",
    )  # fmt: skip


def test_the_start_frame_reaches_a_live_view_and_is_skipped_without_one() -> None:
    bus = Bus()
    stored: list[Frame] = []
    bus.subscribe(stored.append, types=STORED_FRAME_TYPES)
    recorder = Recorder(bus, lambda row: None, session_id=uuid.uuid4(), chat_id=uuid.uuid4())
    _record_one(recorder)
    assert [type(f) for f in stored] == [ToolTraceComplete]

    live: list[Frame] = []
    bus.subscribe(live.append)
    _record_one(recorder)
    assert [type(f) for f in live] == [ToolTraceStart, ToolTraceComplete]
    start, done = live
    assert isinstance(start, ToolTraceStart) and isinstance(done, ToolTraceComplete)
    assert start.trace_id == done.trace.id and start.started_at == done.trace.started_at
    assert done.trace.id.version == 7
    assert done.trace.finished_at is not None and done.trace.finished_at >= start.started_at
    assert done.trace.latency_ms is not None and done.trace.latency_ms >= 0


def test_a_failed_tool_call_records_its_error_and_publishes_an_error_frame() -> None:
    bus = Bus()
    published: list[Frame] = []
    bus.subscribe(published.append)
    chat = uuid.uuid4()
    recorder = Recorder(bus, lambda row: None, session_id=uuid.uuid4(), chat_id=chat)
    trace = recorder.open(0)
    record = recorder.tool_finished(
        trace, name="grep", call_id="c9", arguments={"pattern": "("}, output=None,
        outcome="error", error="bad pattern",
    )  # fmt: skip
    assert (record.outcome, record.error, record.call_id, record.kind) == (
        "error", "bad pattern", "c9", "tool",
    )  # fmt: skip
    assert (record.input, record.chat_id, record.parent_id) == ({"pattern": "("}, chat, None)
    assert [type(f) for f in published] == [ToolTraceComplete, ErrorFrame]
    done, error = published
    assert isinstance(done, ToolTraceComplete) and done.trace is record
    assert isinstance(error, ErrorFrame)
    assert (error.message, error.trace_id, error.chat_id) == ("grep: bad pattern", record.id, chat)

    succeeded = recorder.tool_finished(
        recorder.open(0), name="grep", call_id="c10", arguments={}, output=[], outcome="success"
    )
    assert (succeeded.outcome, succeeded.error) == ("success", None)
