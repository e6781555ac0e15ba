from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from boonb.frames import (
    CacheSegment,
    ErrorFrame,
    MessageDelta,
    ModelCallComplete,
    ToolTraceComplete,
    TraceRecord,
    frame_adapter,
    json_schema,
    keyword_builder,
    parse_frame,
)
from tests.conftest import make_trace


def test_frames_round_trip_through_json_by_their_type() -> None:
    chat = uuid.uuid4()
    frames = [
        ToolTraceComplete(trace=make_trace(chat_id=chat, input={"a": [1, None]})),
        MessageDelta(chat_id=chat, turn_number=2, text="hi"),
        ErrorFrame(scope="tool", message="boom", chat_id=chat),
    ]
    for frame in frames:
        again = parse_frame(frame_adapter.dump_json(frame))
        assert type(again) is type(frame)
        assert again == frame


def test_keyword_builder_builds_what_the_class_builds() -> None:
    trace = make_trace(chat_id=uuid.uuid4(), error="boom", outcome="error", input_tokens=7)
    fields = {name: getattr(trace, name) for name in trace.__dataclass_fields__}
    built = keyword_builder(TraceRecord)(**fields)  # type: ignore[arg-type]
    assert type(built) is TraceRecord and built == trace

    # Defaults apply, and a default factory makes a fresh value for each object.
    build_model_call = keyword_builder(ModelCallComplete)
    first, second = build_model_call(trace=trace), build_model_call(trace=trace)
    assert first == ModelCallComplete(trace=trace) and first.type == "model_call:complete"
    segment = CacheSegment(segment="system", tokens=1, hit_tokens=1, miss_tokens=0, hash="h")
    first.cache.append(segment)
    assert second.cache == []


def test_keyword_builder_refuses_what_the_class_refuses() -> None:
    build = keyword_builder(ToolTraceComplete)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'trace'"):
        build()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'surprise'"):
        build(trace=make_trace(chat_id=uuid.uuid4()), surprise=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes 0 positional arguments"):
        build(make_trace(chat_id=uuid.uuid4()))  # type: ignore[misc]
    with pytest.raises(TypeError, match="not a dataclass without __post_init__"):
        keyword_builder(dict)


def test_unknown_type_and_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_frame({"type": "nope"})
    with pytest.raises(ValidationError, match="surprise\n  Unexpected keyword argument"):
        parse_frame(
            {
                "type": "message:delta",
                "chat_id": str(uuid.uuid4()),
                "turn_number": 1,
                "text": "x",
                "surprise": 1,
            }
        )


def test_schema_names_every_frame_type() -> None:
    mapping = json_schema()["discriminator"]["mapping"]
    assert set(mapping) == {
        "tool_trace:start",
        "tool_trace:complete",
        "model_call:complete",
        "message:delta",
        "message:complete",
        "turn:start",
        "turn:complete",
        "session_saved",
        "session_restored",
        "workflow:status",
        "workflow:step",
        "workflow:log",
        "task:update",
        "error",
    }
