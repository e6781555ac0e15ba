"""Sessions that survive: debounced saves, complete snapshots, resume after a kernel dies."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from boonb.agent.sessions import SessionSaver, load_snapshot, mark_interrupted, snapshot
from boonb.frames import SessionSaved
from tests.conftest import SECRET, Env
from tests.kernels import Kernel


def test_a_burst_of_boundaries_within_a_turn_coalesces_and_the_final_state_is_stored(
    env: Env,
) -> None:
    agent = env.agent(tools=[])
    env.run(agent, "hello")
    saved: list[SessionSaved] = []
    saver = SessionSaver(env.store, saved.append)

    async def burst() -> None:
        import asyncio

        agent.turn_number, agent.phase = 7, "tools"
        for _ in range(50):  # 50 boundaries inside a turn within 100 ms
            saver(agent, False)
            await asyncio.sleep(0.002)
        agent.state = "completed"
        saver(agent, True)

    env.engine.run(burst())
    deadline = time.monotonic() + 5
    while len(saved) < saver.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 2 <= saver.writes <= 3  # the first at once, the final, at most one between
    snap = load_snapshot(env.store, saver.agent_session_id)
    assert snap is not None
    assert (snap["state"], snap["turn_number"]) == ("completed", 7)
    assert saved[-1].state == "completed"


def test_the_first_boundary_and_each_turn_end_are_saved_at_once_not_debounced(env: Env) -> None:
    agent = env.agent(tools=[])
    env.run(agent, "hello")
    saver = SessionSaver(env.store, env.bus.publish, debounce=3600)  # debounced = never

    async def boundaries() -> list[int]:
        written = []
        for turn, phase in ((1, "tools"), (1, "tools"), (1, "model"), (2, "tools"), (2, "model")):
            agent.turn_number, agent.phase = turn, phase
            saver(agent, False)
            written.append(saver.writes)
        return written

    assert env.engine.run(boundaries()) == [1, 1, 2, 2, 3]
    snap = load_snapshot(env.store, saver.agent_session_id)
    assert snap is not None and (snap["turn_number"], snap["phase"]) == (2, "model")


def test_the_snapshot_holds_what_resume_needs_and_no_api_key(env: Env) -> None:
    from boonb.sim import Rule

    env.sim.add_rule(Rule("files", tool_calls=[{"name": "list_files", "arguments": {}}]))
    agent = env.agent(api_key=SECRET, budget=50_000, max_turns=5)
    saver = SessionSaver(env.store, env.bus.publish)
    agent.on_boundary = saver
    env.run(agent, "show files")
    snap = load_snapshot(env.store, saver.agent_session_id)
    assert snap is not None
    assert SECRET not in json.dumps(snap)
    assert snap["provider"]["base_url"] == env.sim.base_url and snap["provider"]["model"]
    assert [m["role"] for m in snap["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert snap["messages"][2]["tool_calls"][0]["function"]["name"] == "list_files"
    assert (snap["state"], snap["phase"], snap["pending_tool_calls"]) == (
        "awaiting_input",
        "idle",
        [],
    )
    assert (snap["budget"], snap["max_turns"], snap["turn_number"]) == (50_000, 5, 2)
    assert "list_files" in snap["tools"] and snap["tokens_used"] > 0
    row = env.rows("SELECT state, kernel_pid FROM agent_sessions")
    assert row[0][0] == "awaiting_input"


def test_a_run_that_breaks_unexpectedly_saves_its_session_as_failed_not_running(
    env: Env,
) -> None:
    def broken_notes(agent: object) -> str:
        raise RuntimeError("the notes hook broke")

    agent = env.agent(tools=[])
    saver = SessionSaver(env.store, env.bus.publish)
    agent.on_boundary = saver
    agent.notes = broken_notes
    with pytest.raises(RuntimeError, match="the notes hook broke"):
        env.run(agent, "hello")
    snap = load_snapshot(env.store, saver.agent_session_id)
    assert snap is not None and (snap["state"], snap["phase"]) == ("failed", "idle")
    assert env.rows("SELECT state FROM agent_sessions") == [("failed",)]


def test_in_progress_sessions_of_dead_kernels_are_marked_interrupted(env: Env) -> None:
    agent = env.agent(tools=[])
    env.run(agent, "hello")
    dead = SessionSaver(env.store, env.bus.publish)
    alive = SessionSaver(env.store, env.bus.publish)
    agent.state = "in_progress"
    now = datetime.now(UTC)
    ghost = snapshot(agent, agent_session_id=dead.agent_session_id)
    ghost["kernel_pid"] = 2**22 + 12345  # no such process
    env.store.writer.enqueue(dead.row(ghost, now))
    live = snapshot(agent, agent_session_id=alive.agent_session_id)
    env.store.writer.enqueue(alive.row(live, now))  # this process: still alive
    env.store.writer.flush()
    assert mark_interrupted(env.store) == 1
    states = dict(env.rows("SELECT id, state FROM agent_sessions"))
    assert states == {dead.agent_session_id: "interrupted", alive.agent_session_id: "in_progress"}
    snap = load_snapshot(env.store, dead.agent_session_id)
    assert snap is not None and snap["state"] == "interrupted"


# Resume after a crash: two real kernels on one project.

SLOW_TOOL = """
import os, pathlib, time, boonb
from boonb.runtime import get_runtime
from boonb.sim import Rule

@boonb.tool
def slow_step(step: str) -> str:
    \"\"\"A step that lasts as long as the BLOCK file exists.\"\"\"
    with open("tool-starts.log", "a") as log:
        log.write(f"{os.getpid()} {step}\\n")
    while pathlib.Path("BLOCK").exists():
        time.sleep(0.05)
    return f"step {step} done"
"""

SESSION_PHASE = """
from boonb.runtime import get_runtime
store = get_runtime().store
store.writer.flush()
with store.db.connection() as con:
    print(con.execute("SELECT state, snapshot->>'$.phase', "
                      "json_array_length(snapshot->'$.pending_tool_calls'), "
                      "json_array_length(snapshot->'$.messages') FROM agent_sessions").fetchall())
"""


def _wait_for(kernel: Kernel, code: str, expected: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = "".join(kernel.execute(code)["stdout"])
        if expected in seen:
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout}s for {expected!r}; last saw {seen!r}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def _rows(project: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(project / ".boonb" / "boonb.duckdb"))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_killed_mid_tool_call_resumes_and_replays_that_call_once(project: Path) -> None:
    (project / "BLOCK").touch()
    first = Kernel(project)
    try:
        first.execute("%load_ext boonb")
        first.execute(
            SLOW_TOOL + "get_runtime().simulator().add_rule(Rule('start', "
            "tool_calls=[{'name': 'slow_step', 'arguments': {'step': 'one'}}]))"
        )
        out = first.execute("%%agent --no-wait --tools slow_step\nstart the job")
        assert out["result"], out
        _wait_for(first, SESSION_PHASE, "[('in_progress', 'tools', 1, 3)]")
        first.kill()
    finally:
        first.stop()
    (project / "BLOCK").unlink()

    second = Kernel(project)
    try:
        second.execute("%load_ext boonb")
        second.execute(SLOW_TOOL)
        listed = "".join(second.execute("%agent sessions")["stdout"])
        assert "interrupted" in listed and "start the job" in listed
        out = second.execute("%agent resume")
        assert not out["error"], out
    finally:
        second.stop()
    starts = (project / "tool-starts.log").read_text().splitlines()
    assert len(starts) == 2 and starts[0].split()[0] != starts[1].split()[0]  # once per kernel
    rows = _rows(project, "SELECT kind, tool_name, outcome FROM tool_traces ORDER BY started_at")
    assert rows[0] == ("model", "sim-chat", "success")  # the completed turn survived the kill
    assert ("tool", "slow_step", "success") in rows
    (state, messages) = _rows(project, "SELECT state, snapshot->'$.messages' FROM agent_sessions")[
        0
    ]
    history = json.loads(messages)
    assert state == "awaiting_input"
    assert [m["role"] for m in history] == [
        "system",
        "user",
        "assistant",
        "tool",
        "user",
        "assistant",
    ]
    assert "kernel restarted" in history[4]["content"]


@pytest.mark.slow
def test_killed_between_turns_resumes_without_losing_the_finished_turn(project: Path) -> None:
    first = Kernel(project)
    try:
        first.execute("%load_ext boonb")
        first.execute(
            "from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"
            "sim = get_runtime().simulator()\n"
            "sim.add_rule(Rule('begin', tool_calls=[{'name': 'list_files', 'arguments': {}}]))\n"
            "sim.add_rule(Rule('.', role='tool', latency=60, reply='too late'))"
        )
        first.execute("%%agent --no-wait\nbegin the survey")
        _wait_for(first, SESSION_PHASE, "[('in_progress', 'model', 0, 4)]")
        first.kill()
    finally:
        first.stop()

    second = Kernel(project)
    try:
        second.execute("%load_ext boonb")
        # A rule on the note's text answers only if the note is the message the model gets.
        second.execute(
            "from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"
            "get_runtime().simulator().add_rule(Rule('kernel restarted since your last turn', "
            "reply='[simulator] told that the kernel restarted'))"
        )
        out = second.execute("%agent resume")
        assert not out["error"], out
    finally:
        second.stop()
    (messages,) = _rows(project, "SELECT snapshot->'$.messages' FROM agent_sessions")[0]
    assert json.loads(messages)[-1]["content"] == "[simulator] told that the kernel restarted"
    rows = _rows(
        project,
        "SELECT turn_number, kind, tool_name FROM tool_traces "
        "WHERE outcome = 'success' ORDER BY started_at",
    )
    assert rows == [(1, "model", "sim-chat"), (1, "tool", "list_files"), (2, "model", "sim-chat")]
    session_ids = _rows(project, "SELECT count(*), count(DISTINCT chat_id) FROM agent_sessions")
    assert session_ids == [(1, 1)]
    assert uuid.UUID(str(_rows(project, "SELECT chat_id FROM agent_sessions")[0][0]))


# One id per chat: %agent sessions lists the user's chats by the id every view shows.


def _saved_chat(env: Env, prompt: str, *, chat_id: uuid.UUID, run_id: uuid.UUID | None = None):
    from boonb.agent.recorder import Recorder

    agent = env.agent(tools=[])
    agent.recorder = Recorder(
        env.bus,
        env.store.writer.enqueue,
        session_id=uuid.uuid4(),
        chat_id=chat_id,
        agent_id="scout" if run_id else None,
        workflow_run_id=run_id,
    )
    agent.on_boundary = SessionSaver(env.store, env.bus.publish)
    env.run(agent, prompt)
    return agent


def test_sessions_list_the_users_chats_by_chat_id_and_workflow_agents_only_when_asked(
    env: Env,
) -> None:
    from boonb.agent.sessions import list_sessions
    from boonb.magics.agent import sessions_text

    older = _saved_chat(env, "first question", chat_id=uuid.UUID(int=0xABCD1 << 100))
    latest = _saved_chat(
        env, "second\nquestion\twith  breaks", chat_id=uuid.UUID(int=0xABCD2 << 100)
    )
    child = _saved_chat(env, "scout the web", chat_id=uuid.uuid4(), run_id=uuid.uuid4())

    top = list_sessions(env.store)
    assert [c.chat_id for c in top] == [latest.chat_id, older.chat_id]  # newest first
    everything = list_sessions(env.store, include_children=True)
    assert [c.chat_id for c in everything] == [child.chat_id, latest.chat_id, older.chat_id]

    table = sessions_text(everything).splitlines()
    assert len(table) == 4  # a header and one line per chat, newlines in titles or not
    assert table[0].startswith("chat ")
    assert table[2].startswith(str(latest.chat_id)) and "second question with breaks" in table[2]
    assert "[workflow " in table[1] and "scout]" in table[1]


def test_a_chat_is_found_by_a_unique_prefix_and_an_ambiguous_or_bad_one_is_explained(
    env: Env,
) -> None:
    from boonb.store.agent_sessions import ChatNotFound, resolve_chat

    one = _saved_chat(env, "one", chat_id=uuid.UUID("0abcd123-1000-4000-8000-000000000001"))
    _saved_chat(env, "two", chat_id=uuid.UUID("0abcd123-2000-4000-8000-000000000002"))
    env.store.writer.flush()
    assert resolve_chat(env.store.db, str(one.chat_id)) == one.chat_id
    assert resolve_chat(env.store.db, "0ABCD123-1000-4000-8000-000000000001") == one.chat_id
    assert resolve_chat(env.store.db, "0abcd123-1") == one.chat_id
    with pytest.raises(ChatNotFound, match="names several chats"):
        resolve_chat(env.store.db, "0abcd")
    with pytest.raises(ChatNotFound, match="no saved chat ffff"):
        resolve_chat(env.store.db, "ffff")
    with pytest.raises(ChatNotFound, match="first 4\\+ characters"):
        resolve_chat(env.store.db, "0ab")
    with pytest.raises(ChatNotFound, match="is not a chat id"):
        resolve_chat(env.store.db, "0abc'; DROP TABLE chats")
