from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading

import pytest

from boonb.agent import Agent, AgentError, tool
from boonb.frames import ErrorFrame, ToolTraceComplete, ToolTraceStart, frame_adapter
from boonb.sim import Fault, Rule
from boonb.sim.tokens import count_prompt_tokens
from tests.conftest import SECRET, Env


def test_final_answer_without_tools_is_one_turn_with_usage(env: Env) -> None:
    agent = env.agent(tools=[])
    result = env.run(agent, "Say hello")
    assert result.stop_reason == "final" and result.stats.turns == 1
    assert result.content.startswith("[simulator]")
    request = env.sim.requests[-1]
    (row,) = env.rows(
        "SELECT kind, turn_number, input_tokens, output_tokens, tokens_used, "
        "outcome FROM tool_traces"
    )
    assert row[:2] == ("model", 1)
    assert row[2] == count_prompt_tokens(request["messages"], request.get("tools"))
    assert row[4] == row[2] + row[3] and row[5] == "success"


def test_tool_calls_of_one_response_run_concurrently_and_are_traced(env: Env) -> None:
    barrier = asyncio.Barrier(2)

    @tool
    async def meet(name: str) -> str:
        """Wait until the other call arrives too (only possible if both run at once)."""
        async with asyncio.timeout(5):
            await barrier.wait()
        return f"met {name}"

    env.sim.add_rule(
        Rule(
            "meet",
            tool_calls=[
                {"name": "meet", "arguments": {"name": "a"}},
                {"name": "meet", "arguments": {"name": "b"}},
            ],
        )
    )
    result = env.run(env.agent(tools=[meet]), "please meet")
    assert result.stats.tool_calls == 2 and result.stats.tool_errors == 0
    rows = env.rows(
        "SELECT tool_name, outcome, json_type(input), input->>'$.name', "
        "output->>'$' FROM tool_traces WHERE kind = 'tool' ORDER BY output->>'$'"
    )
    assert rows == [
        ("meet", "success", "OBJECT", "a", "met a"),
        ("meet", "success", "OBJECT", "b", "met b"),
    ]
    starts = [f for f in env.frames if isinstance(f, ToolTraceStart)]
    completes = [f for f in env.frames if isinstance(f, ToolTraceComplete)]
    assert {s.trace_id for s in starts} == {c.trace.id for c in completes}
    first_complete = env.frames.index(completes[0])
    assert all(env.frames.index(s) < first_complete for s in starts)


def test_a_failing_tool_becomes_an_error_row_and_a_message_the_model_reads(env: Env) -> None:
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(f"disk on fire: {reason}")

    env.sim.add_rule(
        Rule("explode", tool_calls=[{"name": "explode", "arguments": {"reason": "x"}}])
    )
    result = env.run(env.agent(tools=[explode]), "explode please")
    assert result.stop_reason == "final" and result.stats.tool_errors == 1
    (row,) = env.rows("SELECT outcome, error FROM tool_traces WHERE kind = 'tool'")
    assert row == ("error", "RuntimeError: disk on fire: x")
    tool_message = env.sim.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and "disk on fire" in tool_message["content"]
    assert any(isinstance(f, ErrorFrame) and "disk on fire" in f.message for f in env.frames)


def test_unknown_tools_and_bad_arguments_are_errors_the_run_survives(env: Env) -> None:
    env.sim.add_rule(
        Rule(
            "go",
            tool_calls=[
                {"name": "no_such_tool", "arguments": {}},
                {"name": "read_file", "arguments": {"wrong": 1}},
            ],
        )
    )
    result = env.run(env.agent(), "go")
    assert result.stop_reason == "final"
    errors = dict(env.rows("SELECT tool_name, error FROM tool_traces WHERE outcome = 'error'"))
    assert "no tool named 'no_such_tool'" in errors["no_such_tool"]
    assert "missing required argument 'path'" in errors["read_file"]


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "a/../../x"])
def test_path_escapes_are_refused_through_the_agent(env: Env, path: str) -> None:
    (env.project.parent / "secret.txt").write_text("top secret")
    env.sim.add_rule(Rule("peek", tool_calls=[{"name": "read_file", "arguments": {"path": path}}]))
    env.run(env.agent(), "peek")
    (row,) = env.rows("SELECT outcome, error, output FROM tool_traces WHERE kind = 'tool'")
    assert row[0] == "error" and "is not allowed" in row[1] and row[2] is None
    assert "top secret" not in json.dumps(env.sim.requests[-1])


def test_max_turns_stops_a_model_that_keeps_calling_tools(env: Env) -> None:
    env.sim.add_rule(Rule(".", role="any", tool_calls=[{"name": "list_files", "arguments": {}}]))
    agent = env.agent(max_turns=3)
    result = env.run(agent, "loop forever")
    assert result.stop_reason == "max_turns" and result.stats.turns == 3
    assert env.rows("SELECT count(*) FROM tool_traces WHERE kind = 'model'") == [(3,)]
    assert agent.messages[-1]["role"] == "tool"  # history ends consistently


def test_token_budget_stops_the_run_and_answers_pending_tool_calls(env: Env) -> None:
    env.sim.add_rule(Rule(".", role="any", tool_calls=[{"name": "list_files", "arguments": {}}]))
    agent = env.agent(budget=500)
    result = env.run(agent, "loop forever")
    assert result.stop_reason == "budget" and result.stats.turns == 1
    assert result.stats.usage.tokens_used >= 500
    assert agent.messages[-1] == {
        "role": "tool",
        "tool_call_id": agent.messages[-2]["tool_calls"][0]["id"],
        "content": "not run: the token budget is spent",
    }
    assert env.rows("SELECT count(*) FROM tool_traces WHERE kind = 'tool'") == [(0,)]


def test_cancelling_mid_tool_closes_traces_as_cancelled_within_a_second(env: Env) -> None:
    started = asyncio.Event()

    @tool
    async def slow() -> str:
        """Takes a minute."""
        started.set()
        await asyncio.sleep(60)
        return "done"

    env.sim.add_rule(Rule("slow", tool_calls=[{"name": "slow", "arguments": {}}]))
    agent = env.agent(tools=[slow])
    future = env.engine.submit(agent.run("slow please"))
    env.engine.run(asyncio.wait_for(started.wait(), 10))
    import time

    t0 = time.monotonic()
    future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=1)
    assert time.monotonic() - t0 < 1
    rows = env.rows("SELECT kind, outcome FROM tool_traces ORDER BY started_at")
    assert rows == [("model", "success"), ("tool", "cancelled")]
    assert agent.messages[-1]["content"] == "cancelled by the user"


def test_cancelling_during_the_model_call_records_it_cancelled(env: Env) -> None:
    env.sim.latency = 30
    agent = env.agent(tools=[])
    future = env.engine.submit(agent.run("hello"))
    import time

    deadline = time.monotonic() + 5
    while not env.sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    future.cancel()
    env.sim.latency = 0
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=1)
    assert env.rows("SELECT kind, outcome FROM tool_traces") == [("model", "cancelled")]


def test_a_failing_provider_ends_the_run_with_a_clear_error(env: Env) -> None:
    env.sim.inject(Fault.server_error(503), times=10)
    agent = env.agent(tools=[], max_retries=1)
    with pytest.raises(AgentError, match="the model call failed"):
        env.run(agent, "hello")
    (row,) = env.rows("SELECT kind, outcome, error FROM tool_traces")
    assert row[:2] == ("model", "error") and "503" in row[2]


def test_the_api_key_never_appears_in_rows_frames_or_logs(env: Env, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    env.sim.inject(Fault.rate_limit(retry_after=0.01))  # a retry gets logged
    env.sim.add_rule(Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}]))
    env.run(env.agent(api_key=SECRET), "show my files")
    dumped = []
    for table in ("tool_traces", "cache_stats", "chats", "messages", "message_parts"):
        dumped += [repr(r) for r in env.rows(f"SELECT * FROM {table}")]
    frames = [frame_adapter.dump_json(f).decode() for f in env.frames]
    assert len(dumped) > 3 and len(frames) > 3
    for text in [*dumped, *frames, caplog.text]:
        assert SECRET not in text


def test_cache_segments_add_up_and_a_changed_tool_list_is_named(env: Env) -> None:
    # Tools are offered (their schemas are a cache segment) but not used: one call per run.
    env.sim.add_rule(Rule("question", reply="[simulator] noted"))
    agent = env.agent()
    env.run(agent, "first question")
    env.run(agent, "second question")
    agent.tools.pop("fetch_url")  # the tool schemas change: the cached prefix breaks there
    env.run(agent, "third question")
    rows = env.rows(
        "SELECT t.turn_number, t.input_tokens, t.cache_tokens, sum(c.tokens), "
        "sum(c.hit_tokens) FROM tool_traces t JOIN cache_stats c ON c.trace_id = t.id "
        "GROUP BY ALL ORDER BY 1"
    )
    assert [r[0] for r in rows] == [1, 2, 3]
    for _, input_tokens, cache_tokens, seg_tokens, seg_hits in rows:
        assert (seg_tokens, seg_hits) == (input_tokens, cache_tokens)
    assert rows[1][2] > 0  # the second call reused the first one's prefix
    breaks = env.store.traces.cache_breaks(agent.chat_id)
    assert [b.message for b in breaks] == ["cache broken by: tools changed at turn 3"]


def _restored(env: Env, agent: Agent, **kw: object) -> Agent:
    """The agent as a new kernel restores it from its snapshot."""
    again = env.agent(**kw)
    again.recorder.chat_id = agent.chat_id
    again.restore_history(agent.messages, turn_number=agent.turn_number, title=agent.title)
    return again


def test_a_restored_chat_compares_its_cache_with_the_call_before_the_restart(env: Env) -> None:
    env.sim.add_rule(Rule("question", reply="[simulator] noted"))  # one call per run
    agent = env.agent()
    env.run(agent, "first question")
    env.run(agent, "second question")
    restored = _restored(env, agent)
    env.run(restored, "third question")  # the same prompt prefix: no break
    env.store.writer.flush()
    assert env.store.traces.cache_breaks(agent.chat_id) == []

    without_tools = _restored(env, restored, tools=[])  # its tools are gone: a real break
    env.run(without_tools, "fourth question")
    env.store.writer.flush()
    breaks = env.store.traces.cache_breaks(agent.chat_id)
    assert [b.message for b in breaks] == ["cache broken by: tools changed at turn 4"]


def test_follow_up_runs_continue_the_same_chat(env: Env) -> None:
    agent = env.agent(tools=[])
    env.run(agent, "one")
    env.run(agent, "two")
    assert agent.turn_number == 2
    sent = env.sim.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert env.rows("SELECT count(DISTINCT chat_id), max(turn_number) FROM tool_traces") == [(1, 2)]


def test_turn_cache_and_chat_totals_match_the_trace_rows(env: Env) -> None:
    env.sim.add_rule(Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}]))
    env.sim.add_rule(Rule("again", reply="[simulator] the same files"))  # no tools this time
    agent = env.agent()
    env.run(agent, "show files")
    env.run(agent, "again")
    env.store.writer.flush()
    turns = env.store.traces.turn_cache(agent.chat_id)
    assert [t.turn_number for t in turns] == [1, 2, 3]
    for turn in turns:
        assert sum(s.tokens for s in turn.segments) == turn.input_tokens
        assert sum(s.hit_tokens for s in turn.segments) == turn.cache_tokens
    assert turns[0].broken_by is None and turns[2].hit_rate
    totals = env.store.traces.chat_totals(agent.chat_id)
    expected = env.rows("SELECT count(*), sum(input_tokens), sum(cache_tokens) FROM tool_traces")
    assert (totals.traces, totals.input_tokens, totals.cache_tokens) == expected[0]
    assert (totals.model_calls, totals.tool_calls) == (3, 1)


def test_a_huge_tool_output_is_capped_for_the_model_and_the_store_with_its_full_size(
    env: Env,
) -> None:
    @tool
    def dump() -> str:
        """Returns 50 MB of text."""
        return "x" * 50_000_000

    env.sim.add_rule(Rule("dump", tool_calls=[{"name": "dump", "arguments": {}}]))
    agent = env.agent(tools=[dump], max_tool_output=100_000)
    env.run(agent, "dump it")
    message = next(m for m in agent.messages if m["role"] == "tool")
    assert len(message["content"]) < 100_300
    assert message["content"].startswith("x" * 100_000)
    assert "[boonb: output truncated: the tool returned 50,000,000 characters" in message["content"]
    (stored,) = env.rows("SELECT strlen(output) FROM tool_traces WHERE kind = 'tool'")
    assert stored[0] < 100_400
    # The model read the capped text: its prompt holds the marker, not 50 MB.
    assert "output truncated" in json.dumps(env.sim.requests[-1]["messages"][-1])


def test_a_tool_output_within_the_cap_is_untouched(env: Env) -> None:
    @tool
    def small() -> dict:
        """Returns a small value."""
        return {"rows": [1, 2, 3]}

    env.sim.add_rule(Rule("small", tool_calls=[{"name": "small", "arguments": {}}]))
    agent = env.agent(tools=[small], max_tool_output=1_000)
    env.run(agent, "small one")
    message = next(m for m in agent.messages if m["role"] == "tool")
    assert json.loads(message["content"]) == {"rows": [1, 2, 3]}


def _waiting_on(agent: Agent, tool_name: str) -> None:
    """Restore ``agent`` as a kernel that died while its model's call of ``tool_name`` ran."""
    call = {"id": "call-1", "type": "function", "function": {"name": tool_name, "arguments": "{}"}}
    asked = {"role": "assistant", "content": "", "tool_calls": [call]}
    agent.restore_history([*agent.messages, asked], turn_number=agent.turn_number, title="t")


def test_a_resume_counts_the_tool_calls_it_replays_in_its_result(env: Env) -> None:
    @tool
    def mark() -> str:
        """Leave a mark."""
        return "marked"

    agent = env.agent(tools=[mark])
    env.run(agent, "hello")
    _waiting_on(agent, "mark")
    result = env.engine.run(agent.resume())
    assert (result.stop_reason, result.stats.turns, result.stats.tool_calls) == ("final", 1, 1)
    assert "1 tool call" in result.summary()


def test_a_cancel_while_a_resume_replays_a_tool_call_ends_the_session_cancelled(
    env: Env,
) -> None:
    started = threading.Event()

    @tool
    async def hang() -> str:
        """Wait until cancelled."""
        started.set()
        await asyncio.Event().wait()
        return "never"

    agent = env.agent(tools=[hang])
    env.run(agent, "hello")
    _waiting_on(agent, "hang")
    saved: list[tuple[str, str, bool]] = []
    agent.on_boundary = lambda a, final: saved.append((a.state, a.phase, final))
    future = env.engine.submit(agent.resume())
    assert started.wait(10)
    future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=5)
    assert saved[0] == ("in_progress", "tools", False)
    assert agent.state == "cancelled" and saved[-1] == ("cancelled", "idle", True)
    assert env.rows("SELECT outcome FROM tool_traces WHERE tool_name = 'hang'") == [("cancelled",)]
