from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boonb.frames import ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.sim import Rule
from boonb.store import (
    MAX_LIMIT,
    DatabaseUnusable,
    InvalidChatId,
    InvalidCursor,
    InvalidLimit,
    InvalidQuery,
    InvalidSessionId,
    Store,
    TracePage,
    make_row,
)
from boonb.store.errors import InvalidTraceId
from boonb.store.traces import (
    CUT_ABOVE_BYTES,
    PREVIEW_CHARS,
    CutValue,
    PagedTrace,
)
from tests.conftest import Env, make_trace, trace_frame


def _fill(store: Store, chat: uuid.UUID, n: int = 1_000, turns: int = 20) -> list[uuid.UUID]:
    """n traces spread over `turns` turns, enqueued out of order."""
    frames = [trace_frame(chat_id=chat, turn=i % turns, seconds=i) for i in range(n)]
    for frame in reversed(frames):
        store.writer.enqueue(frame)
    store.writer.flush()
    return [f.trace.id for f in frames]


def _all_pages(store: Store, chat: uuid.UUID, **kw: object) -> list:
    traces, cursor = [], None
    while True:
        page = store.traces.page(chat, cursor=cursor, **kw)  # type: ignore[arg-type]
        traces += page.traces
        if page.next_cursor is None:
            return traces
        cursor = page.next_cursor


def test_paging_returns_every_trace_once_in_order(store: Store) -> None:
    chat = uuid.uuid4()
    ids = _fill(store, chat)
    _fill(store, uuid.uuid4(), n=30)  # another chat's traces never leak in
    first = store.traces.page(chat)
    assert len(first.traces) == 50 and first.next_cursor
    traces = _all_pages(store, chat, limit=50)
    assert len(traces) == 1_000
    assert sorted(t.id for t in traces) == sorted(ids)
    keys = [(t.turn_number, t.started_at, t.id) for t in traces]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    "turns",
    [
        range(300),  # one trace a turn: a page spans many turns
        [0, 3, 70, 71, 500, 9_999],  # gaps wider than any span the pager reads at once
        range(1_000, 1_040),  # a chat whose turns start far from 0
    ],
)
def test_paging_sparse_and_gappy_turns_misses_nothing(store: Store, turns: range | list) -> None:
    chat = uuid.uuid4()
    frames = [trace_frame(chat_id=chat, turn=t, seconds=i) for i, t in enumerate(turns)]
    frames += [trace_frame(chat_id=chat, turn=turns[-1], seconds=10_000 + i) for i in range(60)]
    for frame in frames:
        store.writer.enqueue(frame)
    store.writer.flush()
    for limit in (1, 7, 50):
        traces = _all_pages(store, chat, limit=limit)
        assert [t.id for t in traces] == [f.trace.id for f in frames]


def test_a_page_returns_the_values_that_were_stored(store: Store) -> None:
    chat, parent, run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stored = make_trace(
        chat_id=chat,
        kind="model",
        input={"messages": [{"role": "user", "content": "héllo ✓"}], "n": 2**40, "x": 0.1},
        output="plain text",
        call_id="call_1",
        agent_id="reviewer",
        parent_id=parent,
        root_id=run,
        workflow_run_id=run,
        input_tokens=100,
        output_tokens=20,
        cache_tokens=64,
        cache_miss_tokens=36,
        reasoning_tokens=5,
        tokens_used=120,
        cost_usd=0.0012,
        error="boom",
        outcome="error",
        finished_at=datetime(2026, 1, 1, 0, 0, 1, 123457, tzinfo=UTC),
    )
    empty = make_trace(chat_id=chat, turn=2, input=None, output=None, root_id=chat)
    for trace in (stored, empty):
        store.writer.enqueue(ToolTraceComplete(trace=trace))
    store.writer.flush()
    assert store.traces.page(chat).traces == [_paged(stored), _paged(empty)]
    detail = store.traces.detail(stored.id)
    assert detail is not None and detail.trace == stored


def test_a_trace_without_a_root_is_stored_in_its_chats_tree(store: Store) -> None:
    chat = uuid.uuid4()
    store.writer.enqueue(ToolTraceComplete(trace=make_trace(chat_id=chat)))
    store.writer.flush()
    (trace,) = store.traces.page(chat).traces
    assert trace.root_id == chat


def _paged(trace: TraceRecord, **cuts: CutValue) -> PagedTrace:
    return PagedTrace(**{f.name: getattr(trace, f.name) for f in dataclasses.fields(trace)}, **cuts)


def test_turn_filter_returns_only_that_turn(store: Store) -> None:
    chat = uuid.uuid4()
    _fill(store, chat)
    traces = _all_pages(store, chat, turn_number=7, limit=20)
    assert len(traces) == 50
    assert {t.turn_number for t in traces} == {7}


def test_trace_added_after_first_page_appears_later_without_duplicates(store: Store) -> None:
    chat = uuid.uuid4()
    _fill(store, chat, n=200, turns=4)
    page = store.traces.page(chat, limit=50)
    late = make_trace(chat_id=chat, turn=3, seconds=10_000)
    store.writer.enqueue(trace_frame(chat_id=chat, turn=3, seconds=10_000, trace_id=late.id))
    store.writer.flush()
    rest = _collect_from(store, chat, page.next_cursor)
    seen = [t.id for t in page.traces] + [t.id for t in rest]
    assert len(seen) == len(set(seen)) == 201
    assert seen[-1] == late.id


def _collect_from(store: Store, chat: uuid.UUID, cursor: str | None) -> list:
    out = []
    while cursor:
        page = store.traces.page(chat, cursor=cursor)
        out += page.traces
        cursor = page.next_cursor
    return out


def test_limit_caps_at_200_and_defaults_to_50(store: Store) -> None:
    chat = uuid.uuid4()
    _fill(store, chat, n=300)
    assert len(store.traces.page(chat).traces) == 50
    assert len(store.traces.page(chat, limit=MAX_LIMIT).traces) == 200


@pytest.mark.parametrize("limit", [0, -1, 201, 10_000, "50", 2.5, True, None])
def test_bad_limit_is_refused(store: Store, limit: object) -> None:
    with pytest.raises(InvalidLimit, match="limit"):
        store.traces.page(uuid.uuid4(), limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("chat_id", ["", "not-a-uuid", "1234", "../etc/passwd"])
def test_non_uuid_chat_id_is_refused(store: Store, chat_id: str) -> None:
    with pytest.raises(InvalidChatId, match="chat id must be a UUID"):
        store.traces.page(chat_id)


def test_bad_turn_and_session_are_refused(store: Store) -> None:
    with pytest.raises(InvalidQuery, match="turn_number"):
        store.traces.page(uuid.uuid4(), turn_number=-1)
    with pytest.raises(InvalidSessionId):
        store.traces.session_summary("nope")


def test_malformed_tampered_and_foreign_cursors_are_refused(store: Store) -> None:
    chat = uuid.uuid4()
    _fill(store, chat, n=120)
    cursor = store.traces.page(chat).next_cursor
    assert cursor
    body, sig = cursor.split(".")
    tampered_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in ["garbage", "a.b.c", "%%%.%%%", f"{tampered_body}.{sig}", f"{body}.{sig[::-1]}"]:
        with pytest.raises(InvalidCursor):
            store.traces.page(chat, cursor=bad)
    with pytest.raises(InvalidCursor, match="another"):
        store.traces.page(uuid.uuid4(), cursor=cursor)
    with pytest.raises(InvalidCursor, match="another"):
        store.traces.page(chat, cursor=cursor, turn_number=1)


def test_session_summary_aggregates_counts_latency_tokens_and_cache_rate(store: Store) -> None:
    session, chat = uuid.uuid4(), uuid.uuid4()
    rows = [
        dict(
            kind="model",
            tool_name="m",
            input_tokens=100,
            output_tokens=20,
            cache_tokens=60,
            tokens_used=120,
            latency_ms=400.0,
            cost_usd=0.01,
        ),
        dict(
            kind="model",
            tool_name="m",
            input_tokens=200,
            output_tokens=30,
            cache_tokens=90,
            tokens_used=230,
            latency_ms=600.0,
            reasoning_tokens=10,
            cost_usd=0.02,
        ),
        dict(kind="tool", latency_ms=10.0),
        dict(kind="tool", latency_ms=30.0, outcome="error", error="boom"),
    ]
    for i, fields in enumerate(rows):
        store.writer.enqueue(trace_frame(chat_id=chat, session_id=session, seconds=i, **fields))
    store.writer.enqueue(trace_frame(chat_id=chat, input_tokens=999))  # another session
    run = uuid.uuid4()  # a workflow run's own rows (run, agent) are not calls of the session
    for kind in ("workflow", "agent"):
        store.writer.enqueue(
            trace_frame(chat_id=run, session_id=session, kind=kind, latency_ms=5000.0)
        )
    store.writer.flush()
    summary = store.traces.session_summary(session)
    assert summary.chats == 1
    assert (summary.traces, summary.model_calls, summary.tool_calls, summary.errors) == (4, 2, 2, 1)
    assert summary.total_latency_ms == pytest.approx(1040.0)
    assert summary.mean_tool_latency_ms == pytest.approx(20.0)
    assert (summary.input_tokens, summary.output_tokens, summary.cache_tokens) == (300, 50, 150)
    assert summary.reasoning_tokens == 10 and summary.tokens_used == 350
    assert summary.cache_hit_rate == pytest.approx(0.5)
    assert summary.cost_usd == pytest.approx(0.03)


def test_chat_highlights_name_turns_slowest_calls_and_first_errors(store: Store) -> None:
    chat = uuid.uuid4()
    latencies = [5.0, 250.0, 40.0, 900.0, 12.0, 250.0]
    for i, latency in enumerate(latencies):
        store.writer.enqueue(
            trace_frame(chat_id=chat, turn=i // 2, seconds=i, tool_name=f"t{i}", latency_ms=latency)
        )
    for i, turn in enumerate([4, 3, 3]):
        store.writer.enqueue(
            trace_frame(
                chat_id=chat, turn=turn, seconds=10 + i, tool_name=f"bad{i}", latency_ms=None,
                outcome="error", error=f"boom {i}",
            )
        )  # fmt: skip
    store.writer.enqueue(trace_frame(chat_id=uuid.uuid4(), latency_ms=5_000.0))  # another chat
    store.writer.flush()

    highlights = store.traces.chat_highlights(chat, slowest=3, errors=2)
    assert highlights.turns == 5
    # Equal latencies keep the page order; calls without a latency are not ranked.
    assert [(c.tool_name, c.turn_number, c.latency_ms) for c in highlights.slowest] == [
        ("t3", 1, 900.0), ("t1", 0, 250.0), ("t5", 2, 250.0),
    ]  # fmt: skip
    assert [(c.tool_name, c.turn_number, c.error) for c in highlights.errors] == [
        ("bad1", 3, "boom 1"), ("bad2", 3, "boom 2"),
    ]  # fmt: skip

    empty = store.traces.chat_highlights(uuid.uuid4())
    assert (empty.turns, empty.slowest, empty.errors) == (0, [], [])
    with pytest.raises(InvalidChatId):
        store.traces.chat_highlights("nope")


def test_chat_exists_by_its_chat_row_or_its_traces(store: Store) -> None:
    with_traces, with_row, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.writer.enqueue(trace_frame(chat_id=with_traces))
    store.writer.enqueue(
        make_row(
            "chats",
            {"id": with_row, "session_id": uuid.uuid4(), "created_at": datetime.now(UTC)},
        )
    )
    store.writer.flush()
    assert store.traces.chat_exists(with_traces) and store.traces.chat_exists(str(with_row))
    assert not store.traces.chat_exists(unknown)
    with pytest.raises(InvalidChatId):
        store.traces.chat_exists("nope")


def test_a_file_that_is_not_duckdb_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    content = b"my precious notes, not a database\n" * 100
    path.write_bytes(content)
    with pytest.raises(DatabaseUnusable, match="not a DuckDB database"):
        Store(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("where", ["/proc/self/boonb.duckdb", "FILE/sub/boonb.duckdb"])
def test_an_unwritable_place_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "FILE").write_text("a file, not a directory")
    path = Path(where.replace("FILE", str(tmp_path / "FILE")))
    with pytest.raises(DatabaseUnusable, match="not a writable directory"):
        Store(path)


# -- large values: previews in pages, the whole value in a trace's detail ---------------

FIFTY_MB = 50 * 1024 * 1024


def test_a_page_carries_a_preview_of_a_50_mb_output_and_the_detail_the_whole_value(
    store: Store,
) -> None:
    chat = uuid.uuid4()
    line = "line of a large file, é ✓\n"
    output = line * (FIFTY_MB // len(line.encode()))
    big = make_trace(chat_id=chat, seconds=0, input={"path": "big.txt"}, output=output)
    store.writer.enqueue(ToolTraceComplete(trace=big))
    for i in range(1, 50):  # a full page of 50, every one of them large
        store.writer.enqueue(trace_frame(chat_id=chat, seconds=i, output=output[: 10_000 + i]))
    store.writer.flush()

    page = store.traces.page(chat, limit=50)
    assert len(page.traces) == 50
    serialized = TracePage.model_dump_json(page)
    assert len(serialized.encode()) < 50 * 3 * (PREVIEW_CHARS + 1_000)  # < 450 KB
    first = page.traces[0]
    assert first.output is None and first.input == {"path": "big.txt"}
    assert first.input_cut is None
    cut = first.output_cut
    assert cut is not None and cut.kind == "string"
    assert cut.bytes == len(json.dumps(output, ensure_ascii=False).encode())
    # The preview is the text itself (escapes decoded), not its JSON.
    assert cut.preview == output[:PREVIEW_CHARS] and "\n" in cut.preview

    detail = store.traces.detail(big.id)
    assert detail is not None and detail.request is None
    assert detail.trace.output == output


def test_values_up_to_the_cut_come_whole_and_json_values_preview_their_text(
    store: Store,
) -> None:
    chat = uuid.uuid4()
    just_fits = "x" * (CUT_ABOVE_BYTES - 2)  # with its quotes, exactly the limit
    rows = {"numbers": list(range(2_000))}
    store.writer.enqueue(trace_frame(chat_id=chat, seconds=0, output=just_fits))
    store.writer.enqueue(trace_frame(chat_id=chat, seconds=1, input=rows, output=None))
    store.writer.flush()
    fits, cut = store.traces.page(chat).traces
    assert fits.output == just_fits and fits.output_cut is None
    assert cut.input is None and cut.input_cut is not None and cut.output_cut is None
    assert cut.input_cut.kind == "json"
    text = json.dumps(rows, separators=(",", ":"))
    assert cut.input_cut.preview == text[:PREVIEW_CHARS]
    assert cut.input_cut.bytes == len(text)


@pytest.mark.parametrize("shift", range(7))
@pytest.mark.parametrize("char", ["\\", "\n", '"', "\x01", "é", "🎉"])
def test_a_string_preview_cut_inside_an_escape_still_decodes(
    store: Store, char: str, shift: int
) -> None:
    chat = uuid.uuid4()
    # Escapes (or a character outside the BMP) where the stored text is cut, at each offset.
    value = "a" * (2 * PREVIEW_CHARS - 3 - shift) + char * 6 + "b" * 5_000
    store.writer.enqueue(trace_frame(chat_id=chat, output=value))
    store.writer.flush()
    (trace,) = store.traces.page(chat).traces
    assert trace.output_cut is not None and trace.output_cut.kind == "string"
    assert trace.output_cut.preview == value[:PREVIEW_CHARS]


def test_detail_of_an_unknown_trace_or_one_of_another_chat_is_none(store: Store) -> None:
    chat = uuid.uuid4()
    trace = make_trace(chat_id=chat)
    store.writer.enqueue(ToolTraceComplete(trace=trace))
    store.writer.flush()
    assert store.traces.detail(uuid.uuid4()) is None
    assert store.traces.detail(trace.id, chat_id=uuid.uuid4()) is None
    assert store.traces.detail(str(trace.id), chat_id=chat) is not None
    with pytest.raises(InvalidTraceId, match="trace id must be a UUID"):
        store.traces.detail("not-a-uuid")


# -- a model call's request as it was sent ------------------------------------------------


def _model_calls(store: Store, chat: uuid.UUID) -> list[PagedTrace]:
    store.writer.flush()
    return [t for t in store.traces.page(chat, limit=MAX_LIMIT).traces if t.kind == "model"]


def test_a_model_calls_detail_rebuilds_the_request_exactly_as_the_provider_received_it(
    env: Env,
) -> None:
    env.sim.add_rule(
        Rule("peek", tool_calls=[{"name": "read_file", "arguments": {"path": "notes.txt"}}])
    )
    agent = env.agent(system_prompt="You are a careful test agent.")
    env.run(agent, "peek at the notes")
    env.run(agent, "and now say thanks")
    calls = _model_calls(env.store, agent.chat_id)
    received = env.sim.requests
    assert len(calls) == len(received) >= 3  # a tool call, an answer, the follow-up
    for call, body in zip(calls, received, strict=True):
        detail = env.store.traces.detail(call.id)
        assert detail is not None and detail.request is not None
        assert detail.request.messages == body["messages"]
        assert detail.request.tools == body["tools"]
        assert detail.request.model == body["model"] and detail.request.notes == []
    # The system prompt and the tool schemas are recorded once, not in every trace.
    recorded = [c.id for c in calls if "tool_schemas" in json.dumps(_whole_input(env, c.id))]
    assert recorded == [calls[0].id]


def _whole_input(env: Env, trace_id: uuid.UUID) -> object:
    detail = env.store.traces.detail(trace_id)
    assert detail is not None
    return detail.trace.input


def test_a_changed_system_prompt_is_recorded_again_and_used_from_then_on(env: Env) -> None:
    agent = env.agent(tools=[], system_prompt="first prompt")
    env.run(agent, "hello")
    agent.messages[0] = {"role": "system", "content": "second prompt"}
    env.run(agent, "again")
    first, second = _model_calls(env.store, agent.chat_id)
    details = [env.store.traces.detail(c.id) for c in (first, second)]
    systems = [d.request.messages[0] for d in details if d and d.request]
    assert systems == [
        {"role": "system", "content": "first prompt"},
        {"role": "system", "content": "second prompt"},
    ]
    assert [d.request.tools for d in details if d and d.request] == [None, None]


def test_a_model_call_recorded_before_its_context_was_says_what_is_missing(
    store: Store,
) -> None:
    chat = uuid.uuid4()
    old = make_trace(
        chat_id=chat,
        kind="model",
        tool_name="m",
        input={"model": "m", "new_messages": [], "message_count": 3, "tools": ["read_file"]},
    )
    store.writer.enqueue(ModelCallComplete(trace=old, cache=[]))
    store.writer.flush()
    detail = store.traces.detail(old.id)
    assert detail is not None and detail.request is not None
    assert detail.request.messages == [] and detail.request.tools is None
    assert "were not recorded" in detail.request.notes[0]
    assert "read_file" in detail.request.notes[0]
    assert "Only 0 of the 2 messages" in detail.request.notes[1]
