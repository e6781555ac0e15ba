"""Nothing finished is lost when a real kernel is killed (SIGKILL: no atexit, no flush).

A cell that returned has its rows on disk; a turn that ended survives a kill early in
the next; resume replays only the tool calls that had not finished.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from boonb.store import Store
from tests.conftest import trace_frame
from tests.kernels import Kernel

pytestmark = pytest.mark.slow

SIM_RULES = "from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "sales.txt").write_text("revenue grew 12% in Q3\n")
    return root


def _db(project: Path) -> Path:
    return project / ".boonb" / "boonb.duckdb"


def _rows(project: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(_db(project)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll a condition the test cannot be told about (a file, another process's rows)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.01)


def _rows_when_free(project: Path, sql: str) -> list[tuple]:
    """Rows read while a live kernel holds the file now and then (it lets go when idle)."""
    try:
        return _rows(project, sql)
    except duckdb.IOException:
        return []


def test_a_cell_that_returned_is_on_disk_when_the_kernel_is_killed_at_once(
    project: Path,
) -> None:
    kernel = Kernel(project)
    try:
        kernel.execute("%load_ext boonb")
        out = kernel.execute("%%agent --max-turns 6\nWhich files mention 'revenue'?")
        kernel.kill()  # 0 ms after the cell reported idle
    finally:
        kernel.stop()
    assert not out["error"], out
    (summary,) = out["result"]
    turns, calls = map(int, re.search(r"(\d+) turns? · (\d+) tool calls?", summary).groups())
    (chat_id,) = _rows(project, "SELECT id FROM chats")[0]
    traces = _rows(project, "SELECT kind, outcome FROM tool_traces")
    assert sorted(traces) == sorted([("model", "success")] * turns + [("tool", "success")] * calls)
    roles = [r for (r,) in _rows(project, "SELECT role FROM messages ORDER BY created_at, id")]
    assert roles[0] == "user" and roles[-1] == "assistant"
    assert roles.count("tool") == calls
    sessions = _rows(project, "SELECT chat_id, state FROM agent_sessions")
    assert sessions == [(chat_id, "awaiting_input")]


def test_a_workflow_cell_that_returned_is_on_disk_when_the_kernel_is_killed_at_once(
    project: Path,
) -> None:
    kernel = Kernel(project)
    try:
        kernel.execute("%load_ext boonb")
        out = kernel.execute(
            "%%workflow --args '{\"topic\": \"ducks\"}'\n"
            'scout = agent("scout", prompt="You find facts.", tools=[])\n'
            'result = scout.run(args["topic"])'
        )
        kernel.kill()  # 0 ms after the cell reported idle
    finally:
        kernel.stop()
    assert not out["error"], out
    ((state, result),) = _rows(project, "SELECT state, result FROM workflow_runs")
    assert state == "completed" and result
    assert ("model", "success") in _rows(project, "SELECT kind, outcome FROM tool_traces")


TWO_TURN_TOOLS = """
import pathlib, time, boonb

@boonb.tool
def mark() -> str:
    \"\"\"The first turn's tool.\"\"\"
    return "marked"

@boonb.tool
def block() -> str:
    \"\"\"The second turn's tool: says it started, then runs until the kernel dies.\"\"\"
    pathlib.Path("turn-two-tool").touch()
    while True:
        time.sleep(1)
"""


# The writer's flush interval is a minute here, so the only way turn 1 reaches the disk
# before the kill is the session save at the turn boundary waking the writer: without it,
# nothing is written (checked by silencing the writer's wake-up event). The
# kill comes this long after the second turn's tool call starts. Committing the turn takes
# one transaction, 35-55 ms on an idle 2-core VM when the file must be opened first, and
# several times that when the machine is loaded 4x over its cores (a whole suite beside
# other work lost the turn at 60 ms once): these delays keep a margin for that, and are
# still far inside the minute the writer would otherwise wait.
@pytest.mark.parametrize("delay_ms", [150, 400])
def test_a_kill_early_in_the_second_turn_keeps_the_first(project: Path, delay_ms: int) -> None:
    kernel = Kernel(project, env={"BOONB_FLUSH_INTERVAL_MS": "60000"})
    try:
        kernel.execute("%load_ext boonb")
        kernel.execute(
            TWO_TURN_TOOLS + SIM_RULES + "sim = get_runtime().simulator()\n"
            "sim.add_rule(Rule('begin', tool_calls=[{'name': 'mark', 'arguments': {}}]))\n"
            "sim.add_rule(Rule('marked', role='tool', "
            "tool_calls=[{'name': 'block', 'arguments': {}}]))"
        )
        # Started from Python, so no widget is shown: showing one writes what is queued.
        kernel.execute(
            "h = boonb.start(boonb.new_agent(tools=['mark', 'block']), 'begin the job', "
            "wait=False)"
        )
        _wait_until((project / "turn-two-tool").exists, "the second turn's tool call")
        time.sleep(delay_ms / 1000)  # the fault: a kill this far into that tool call
        kernel.kill()
    finally:
        kernel.stop()
    traces = _rows(project, "SELECT turn_number, kind, tool_name, outcome FROM tool_traces")
    assert (1, "model", "sim-chat", "success") in traces
    assert (1, "tool", "mark", "success") in traces
    ((state, turn, phase),) = _rows(
        project,
        "SELECT state, CAST(snapshot->>'$.turn_number' AS INTEGER), snapshot->>'$.phase' "
        "FROM agent_sessions",
    )
    assert state == "in_progress" and (turn, phase) in ((1, "model"), (2, "tools"))
    if delay_ms != 400:
        return
    second = Kernel(project)  # and it is there to resume
    try:
        second.execute("%load_ext boonb")
        listed = "".join(second.execute("%agent sessions")["stdout"])
    finally:
        second.stop()
    assert "interrupted" in listed and "begin the job" in listed


PARALLEL_TOOLS = """
import os, pathlib, time, boonb

@boonb.tool
def quick() -> str:
    \"\"\"Finishes at once.\"\"\"
    with open("calls.log", "a") as log:
        log.write(f"quick {os.getpid()}\\n")
    return "quick result"

@boonb.tool
def slow() -> str:
    \"\"\"Runs as long as the BLOCK file exists.\"\"\"
    with open("calls.log", "a") as log:
        log.write(f"slow {os.getpid()}\\n")
    while pathlib.Path("BLOCK").exists():
        time.sleep(0.02)
    return "slow result"
"""


def test_resume_replays_only_the_tool_call_that_had_not_finished(project: Path) -> None:
    (project / "BLOCK").touch()
    first = Kernel(project)
    try:
        first.execute("%load_ext boonb")
        first.execute(
            PARALLEL_TOOLS + SIM_RULES + "get_runtime().simulator().add_rule(Rule('go', "
            "tool_calls=[{'name': 'quick', 'arguments': {}}, {'name': 'slow', 'arguments': {}}]))"
        )
        first.execute("%%agent --no-wait --tools quick,slow\ngo")
        _wait_until(
            lambda: bool(
                _rows_when_free(project, "SELECT 1 FROM tool_traces WHERE tool_name = 'quick'")
            ),
            "the quick call's trace on disk",
        )
        # The kill must find slow running: on a loaded machine its thread may start later.
        _wait_until(
            lambda: "slow" in (project / "calls.log").read_text(), "the slow call started"
        )
        first.kill()
    finally:
        first.stop()
    (project / "BLOCK").unlink()

    second = Kernel(project)
    try:
        second.execute("%load_ext boonb")
        second.execute(PARALLEL_TOOLS)
        out = second.execute("%agent resume")
        assert not out["error"], out
    finally:
        second.stop()
    calls = [line.split()[0] for line in (project / "calls.log").read_text().splitlines()]
    assert sorted(calls) == ["quick", "slow", "slow"]
    per_call = _rows(
        project,
        "SELECT tool_name, count(*) FROM tool_traces WHERE kind = 'tool' AND outcome = 'success' "
        "GROUP BY call_id, tool_name ORDER BY tool_name",
    )
    assert per_call == [("quick", 1), ("slow", 1)]
    (messages,) = _rows(project, "SELECT snapshot->'$.messages' FROM agent_sessions")[0]
    assert '"quick result"' in messages and '"slow result"' in messages


def test_a_damaged_database_is_explained_in_the_notebook_not_a_traceback(project: Path) -> None:
    db = _db(project)
    db.parent.mkdir()
    store = Store(db, flush_interval=0.02)
    chat = uuid.uuid4()
    for i in range(5_000):
        store.writer.enqueue(trace_frame(chat_id=chat, seconds=i, output="z" * 100))
    assert store.writer.flush(timeout=60)
    with store.db.connection() as con:
        con.execute("CHECKPOINT")
    store.close()
    os.truncate(db, db.stat().st_size // 2)
    kernel = Kernel(project)
    try:
        kernel.execute("%load_ext boonb")
        out = kernel.execute("%agent sessions")
    finally:
        kernel.stop()
    assert not out["error"], out
    said = "".join(out["stderr"])
    assert "is damaged" in said and ".damaged" in said and "Traceback" not in said


def test_magic_options_lose_their_shell_quotes_and_an_empty_one_is_refused(
    project: Path,
) -> None:
    kernel = Kernel(project)
    try:
        kernel.execute("%load_ext boonb")
        empty = kernel.execute("%%agent --model ''\nhello")
        quoted = kernel.execute("%%agent --model 'sim-chat' --tools 'none'\nhello")
        unclosed = kernel.execute("%%agent --model 'sim\nhello")
    finally:
        kernel.stop()
    assert "UsageError: --model is empty" in "".join(empty["stderr"])
    assert not quoted["error"] and not quoted["stderr"], quoted
    assert "check the quotes" in "".join(unclosed["stderr"])
    assert _rows(project, "SELECT model FROM chats") == [("sim-chat",)]
