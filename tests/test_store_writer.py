from __future__ import annotations

import threading
import uuid
from pathlib import Path

import duckdb
import pytest

from boonb.frames import CacheSegment, ModelCallComplete, TurnStart
from boonb.store import Store, make_row
from tests.conftest import T0, make_trace, trace_frame


def _ids(path: Path, table: str = "tool_traces") -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [str(r[0]) for r in con.execute(f"SELECT id FROM {table}").fetchall()]
    finally:
        con.close()


def test_frames_enqueued_from_four_threads_are_all_stored_exactly_once(db_path: Path) -> None:
    store = Store(db_path, flush_interval=0.01)
    chat = uuid.uuid4()
    expected: list[str] = []
    lock = threading.Lock()

    def produce() -> None:
        frames = [trace_frame(chat_id=chat, seconds=i) for i in range(2_500)]
        with lock:
            expected.extend(str(f.trace.id) for f in frames)
        for frame in frames:
            store.writer.enqueue(frame)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.writer.flush(timeout=60)
    store.close()
    stored = _ids(db_path)
    assert len(stored) == 10_000
    assert sorted(stored) == sorted(expected)


def test_json_values_are_stored_as_values_not_wrapped_strings(store: Store) -> None:
    chat = uuid.uuid4()
    store.writer.enqueue(trace_frame(chat_id=chat, input={"q": [1, 2]}, output="plain text"))
    store.writer.flush()
    with store.db.connection() as con:
        row = con.execute(
            "SELECT json_type(input), input->>'$.q[1]', json_type(output), output->>'$' "
            "FROM tool_traces"
        ).fetchone()
    assert row == ("OBJECT", "2", "VARCHAR", "plain text")


def test_model_call_frame_writes_trace_and_cache_segments(store: Store) -> None:
    chat = uuid.uuid4()
    trace = make_trace(
        chat_id=chat,
        kind="model",
        tool_name="deepseek-chat",
        input_tokens=100,
        cache_tokens=64,
        cache_miss_tokens=36,
    )
    segments = [
        CacheSegment(segment="system", tokens=40, hit_tokens=40, miss_tokens=0, hash="a"),
        CacheSegment(segment="history", tokens=60, hit_tokens=24, miss_tokens=36, hash="b"),
    ]
    store.writer.enqueue(ModelCallComplete(trace=trace, cache=segments))
    store.writer.enqueue(TurnStart(chat_id=chat, turn_number=0, started_at=T0))  # nothing to store
    store.writer.flush()
    with store.db.connection() as con:
        rows = con.execute(
            "SELECT segment, tokens, hit_tokens, miss_tokens FROM cache_stats ORDER BY segment"
        ).fetchall()
        kinds = con.execute("SELECT kind, cache_tokens FROM tool_traces").fetchall()
    assert rows == [("history", 60, 24, 36), ("system", 40, 40, 0)]
    assert kinds == [("model", 64)]


def test_upserts_keep_the_newest_state(store: Store) -> None:
    sid, chat = uuid.uuid4(), uuid.uuid4()
    for state in ("in_progress", "awaiting_input", "completed"):
        store.writer.enqueue(
            make_row(
                "agent_sessions",
                {
                    "id": sid,
                    "chat_id": chat,
                    "state": state,
                    "snapshot": {"s": state},
                    "last_update": T0,
                },
                json_columns=frozenset({"snapshot"}),
                action="upsert",
            )
        )
        if state == "awaiting_input":
            store.writer.flush()
    store.writer.flush()
    with store.db.connection() as con:
        rows = con.execute("SELECT state, snapshot->>'$.s' FROM agent_sessions").fetchall()
    assert rows == [("completed", "completed")]


def test_a_bad_row_does_not_hold_back_the_others(store: Store) -> None:
    chat = uuid.uuid4()
    good = trace_frame(chat_id=chat)
    bad = make_row("no_such_table", {"x": 1})
    store.writer.enqueue(bad)
    store.writer.enqueue(good)
    assert store.writer.flush(timeout=10)
    assert _count(store) == 1


def test_a_bad_trace_is_left_out_alone_and_named(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    chat = uuid.uuid4()
    good = [trace_frame(chat_id=chat, seconds=i) for i in range(100)]
    bad = trace_frame(chat_id=chat, turn=2**40)  # does not fit the INTEGER column
    for frame in good[:37] + [bad] + good[37:]:
        store.writer.enqueue(frame)
    assert store.writer.flush(timeout=10)
    assert _count(store) == 100
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failures] == [f"store: could not write trace {bad.trace.id}"]


def _count(store: Store) -> int:
    with store.db.connection() as con:
        return int(con.execute("SELECT count(*) FROM tool_traces").fetchone()[0])  # type: ignore[index]
