"""Background subagents in real kernels: a kernel killed with a task running, and an agent
that fans out to three subagents and collects them.

Kernels come from ``tests/kernels.py``; the database is read from the test process only
after the kernel holding it has stopped (or died).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest

from boonb.store import Store
from boonb.store.projections import walk
from tests.kernels import Kernel

pytestmark = pytest.mark.slow

SETUP = """\
%load_ext boonb
import threading, boonb
from boonb import config
from boonb.runtime import get_runtime
from boonb.sim import Rule
rt = get_runtime()
sim = rt.simulator()
config.update(background_poll_interval_s=0.1)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def _rows(project: Path, sql: str, *params: object) -> list[tuple]:
    con = duckdb.connect(str(project / ".boonb" / "boonb.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _ok(out: dict[str, list]) -> str:
    assert not out["error"], out
    return "".join(out["stdout"])


def test_a_killed_kernels_running_task_reads_interrupted_and_a_new_kernel_retries_it(
    project: Path,
) -> None:
    first = Kernel(project)
    try:
        _ok(first.execute(SETUP))
        # The subagent reads a file, then waits in a slow second turn: the kill lands there,
        # once its first turn is saved (a session_saved frame goes out when it is on disk).
        _ok(
            first.execute(
                "(rt.settings.project / 'notes.txt').write_text('alpha')\n"
                "sim.add_rule(Rule('^survey', tool_calls=[{'name': 'read_file', "
                "'arguments': {'path': 'notes.txt'}}], times=1))\n"
                "sim.add_rule(Rule('alpha', role='tool', reply='done', latency=600, times=1))\n"
                "read, saved = threading.Event(), threading.Event()\n"
                "def watch(f):\n"
                "    if f.type == 'tool_trace:complete' and f.trace.tool_name == 'read_file':\n"
                "        read.set()\n"
                "    elif f.type == 'session_saved' and read.is_set() and f.turn_number == 1:\n"
                "        saved.set()\n"
                "rt.bus.subscribe(watch)\n"
                "handle = boonb.spawn('survey the notes', tools=['read_file'])\n"
                "assert saved.wait(60)\n"
                "print(handle.task_id, handle.status().state)"
            )
        )
        task_id, state = out_words = _ok(
            first.execute("print(handle.task_id, handle.status().state)")
        ).split()
        assert state == "running", out_words
        first.kill()
    finally:
        first.stop()
    ((chat_id, turn_rows),) = _rows(
        project,
        "SELECT t.chat_id, count(tr.id) FROM tasks t JOIN tool_traces tr ON tr.chat_id = t.chat_id "
        "WHERE t.id = ? GROUP BY t.chat_id",
        uuid.UUID(task_id),
    )
    assert turn_rows == 2  # the first turn's model call and its read_file call

    second = Kernel(project)
    try:
        _ok(second.execute(SETUP))
        listed = _ok(
            second.execute("for t in rt.tasks.list(): print(t.task_id, t.state, t.attempt)")
        )
        retried = _ok(
            second.execute(
                f"again = rt.tasks.retry('{task_id}')\n"
                "done = rt.tasks.wait(again.task_id, 60)\n"
                "print(again.task_id, done.state, done.attempt, done.retry_of)"
            )
        )
        _ok(second.execute("rt.store.writer.flush()"))
    finally:
        second.stop()

    assert listed.split() == [task_id, "interrupted", "1"]
    new_id, state, attempt, retry_of = retried.split()
    assert (state, attempt, retry_of) == ("completed", "2", task_id)
    rows = _rows(project, "SELECT id, state, attempt FROM tasks ORDER BY attempt")
    assert rows == [
        (uuid.UUID(task_id), "interrupted", 1),
        (uuid.UUID(new_id), "completed", 2),
    ]
    kept = _rows(
        project,
        "SELECT kind, outcome FROM tool_traces WHERE chat_id = ? ORDER BY started_at",
        chat_id,
    )
    assert kept == [("model", "success"), ("tool", "success")]  # the finished turn survived


FAN_OUT = """\
subs = ['sub alpha', 'sub beta', 'sub gamma']
release = threading.Event()
seen_while_working = []

@boonb.tool
def gate() -> str:
    \"\"\"Wait until the main agent has done its own part.\"\"\"
    assert release.wait(60)
    return 'released'

@boonb.tool
def own_work() -> str:
    \"\"\"The main agent's own work, done while its subagents run.\"\"\"
    tasks = rt.tasks.list()
    seen_while_working.extend(t.state for t in tasks)
    sim.add_rule(Rule('finished since your last turn', tool_calls=[
        {'name': 'subagent_result', 'arguments': {'task_id': str(t.task_id)}} for t in tasks]))
    release.set()
    for t in tasks:  # so the next model call is told of all three at once
        rt.tasks.wait(t.task_id, 60)
    return 'my own part is done'

sim.add_rule(Rule('^Fan out', tool_calls=[
    {'name': 'spawn_subagent', 'arguments': {'prompt': p, 'tools': ['gate']}} for p in subs]))
sim.add_rule(Rule('"status": "pending"', role='tool',
                  tool_calls=[{'name': 'own_work', 'arguments': {}}]))
sim.add_rule(Rule('^sub ', tool_calls=[{'name': 'gate', 'arguments': {}}]))
sim.add_rule(Rule('"answer"', role='tool', reply='collected all three'))
"""


def test_an_agent_in_a_kernel_fans_out_to_three_subagents_and_collects_them(
    project: Path,
) -> None:
    kernel = Kernel(project)
    try:
        _ok(kernel.execute(SETUP))
        _ok(kernel.execute(FAN_OUT))
        ran = kernel.execute(
            "%%agent --max-turns 6 --tools spawn_subagent,subagent_result,own_work\n"
            "Fan out the research"
        )
        facts = _ok(
            kernel.execute(
                "import json\n"
                "main = rt.chats[rt.last_chat_id]\n"
                "print(json.dumps({'main': str(main.chat_id), 'seen': seen_while_working,\n"
                "  'answer': main.messages[-1]['content'],\n"
                "  'notes': [m['content'] for m in main.messages if m['role'] == 'user'][1:],\n"
                "  'tasks': {str(t.task_id): [t.state, str(t.chat_id), str(t.parent_trace_id)]\n"
                "            for t in rt.tasks.list()}}))"
            )
        )
    finally:
        kernel.stop()
    assert not ran["error"], ran
    found = json.loads(facts)
    assert found["answer"] == "collected all three"
    tasks = found["tasks"]
    assert len(tasks) == 3 and all(state == "read" for state, _, _ in tasks.values())
    assert set(found["seen"]) <= {"pending", "running"}  # it went on while they ran
    assert len(found["notes"]) == 1 and all(t in found["notes"][0] for t in tasks)

    store = Store(project / ".boonb" / "boonb.duckdb")
    try:
        tree = store.traces.tree(found["main"])
    finally:
        store.close()
    assert tree is not None
    spawn_calls = {
        str(n.trace.id): {str(child.trace.chat_id) for child in n.children}
        for n in walk(tree.nodes)
        if n.trace.tool_name == "spawn_subagent"
    }
    assert spawn_calls == {parent: {chat} for _, chat, parent in tasks.values()}
    collected = [
        json.loads(output)
        for (output,) in _rows(
            project,
            "SELECT output FROM tool_traces WHERE tool_name = 'subagent_result' AND chat_id = ?",
            uuid.UUID(found["main"]),
        )
    ]
    assert sorted(c["task_id"] for c in collected) == sorted(tasks)
    assert all(c["result"]["answer"] for c in collected)
