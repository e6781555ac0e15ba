from __future__ import annotations

import uuid

from boonb.agent.recorder import Recorder
from boonb.bus import Bus
from boonb.frames import Frame, ToolTraceComplete, ToolTraceStart
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
