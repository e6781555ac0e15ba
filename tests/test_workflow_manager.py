"""Workflow runs end to end: sandboxed scripts, agents on the simulator, the manager's queue,
cancel, the result cache and the built-in catalog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boonb import config
from boonb.frames import Frame, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.workflow.manager import WorkflowManager

pytestmark = pytest.mark.slow

SCRIPT = """
log("start")
writer = agent("writer", prompt="You write one line.")
critic = agent("critic", prompt="You criticise.")
first = writer.run("a line about ducks")
both = parallel([(writer, "about geese"), (critic, first)])
def shout(text):
    return text.upper()
chain = pipeline([writer, shout, critic], input="about swans")
named = phase("review", agents=[(critic, "line one"), (writer, "line two")])
log("done")
result = {"first": first, "both": both, "chain": chain, "named": sorted(named)}
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime()
    rt.simulator().latency = 0
    yield rt
    rt.shutdown()


def _frames(runtime: Runtime) -> list[Frame]:
    seen: list[Frame] = []
    runtime.bus.subscribe(seen.append, types={"workflow:log", "workflow:step"})
    return seen


def test_a_script_runs_end_to_end_with_logs_in_order_and_tagged_traces(runtime: Runtime) -> None:
    frames = _frames(runtime)
    manager = runtime.workflows
    run_id = manager.run_script(SCRIPT)
    status = manager.wait(run_id, timeout=120)
    assert status.state == "completed", status
    result = status.result
    assert isinstance(result, dict)
    assert "ducks" in result["first"] and len(result["both"]) == 2
    assert result["named"] == ["critic", "writer"]
    logs = [f.message for f in frames if isinstance(f, WorkflowLog)]
    assert logs[0] == "start" and logs[-1] == "done"
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows = con.execute(
            # The calls of the run's agents (its run and phase rows belong to no agent).
            "SELECT DISTINCT agent_id FROM tool_traces WHERE workflow_run_id = ? "
            "AND kind IN ('model', 'tool') ORDER BY 1",
            [run_id],
        ).fetchall()
        stored = con.execute("SELECT state FROM workflow_runs WHERE id = ?", [run_id]).fetchone()
    assert rows == [("critic",), ("writer",)]
    assert stored == ("completed",)


def test_a_fourth_run_waits_as_pending_and_cancel_stops_a_run_quickly(runtime: Runtime) -> None:
    runtime.simulator().add_rule(Rule("slow", reply="finally", latency=30))
    manager = runtime.workflows
    ended: list[WorkflowStatus] = []
    runtime.bus.subscribe(
        lambda f: ended.append(f) if f.state == "cancelled" else None,  # type: ignore[union-attr]
        types={"workflow:status"},
    )
    script = 'result = agent("a", prompt="p").run("slow please")'
    runs = [manager.run_script(script, timeout=60) for _ in range(4)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [manager.status(r).state for r in runs]
        if states[:3] == ["running"] * 3:
            break
        time.sleep(0.05)
    assert [manager.status(r).state for r in runs] == ["running"] * 3 + ["pending"]
    sim = runtime.simulator()
    while len(sim.requests) < 3 and time.monotonic() < deadline:  # in their model calls
        time.sleep(0.01)
    assert len(sim.requests) == 3
    for r in runs:
        manager.cancel(r)
    # Quickly: the rule's model calls take 30 s; how quickly is benchmarks' to measure.
    for r in runs:
        assert manager.wait(r, timeout=10).state == "cancelled"
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        outcomes = con.execute("SELECT outcome FROM tool_traces").fetchall()
        states = con.execute("SELECT state FROM workflow_runs").fetchall()
    assert outcomes and set(outcomes) == {("cancelled",)}  # the agents were stopped too
    # The pending one too, in its row and in a frame for the views (once each).
    assert states == [("cancelled",)] * 4
    assert sorted(str(f.run_id) for f in ended) == sorted(str(r) for r in runs)


def test_a_higher_run_limit_set_while_runs_wait_starts_them_at_once(runtime: Runtime) -> None:
    config.update(workflow_max_concurrent=1)
    runtime.simulator().add_rule(Rule("slow", reply="finally", latency=30))
    manager = runtime.workflows
    script = 'result = agent("a", prompt="p").run("slow please")'
    runs = [manager.run_script(script, timeout=60) for _ in range(3)]

    def states_become(wanted: list[str]) -> list[str]:
        deadline = time.monotonic() + 30
        while (states := [manager.status(r).state for r in runs]) != wanted:
            if time.monotonic() > deadline:
                return states
            time.sleep(0.02)
        return states

    assert states_become(["running", "pending", "pending"]) == ["running", "pending", "pending"]
    # A round trip through the engine: the two waiting runs have asked for a slot by then.
    runtime.engine.run(asyncio.sleep(0))
    config.update(workflow_max_concurrent=2)  # as %boonb config does
    assert states_become(["running", "running", "pending"]) == ["running", "running", "pending"]
    for r in runs:
        manager.cancel(r)
    assert [manager.wait(r, timeout=10).state for r in runs] == ["cancelled"] * 3


CACHED = """
def run(args):
    a = agent("alpha", prompt="You summarise.")
    b = agent("beta", prompt="You translate.")
    c = agent("gamma", prompt="You count.", cache=False)
    return [a.run(args["x"]), b.run(args["y"]), c.run("always")]
"""


def _write_workflow(project: Path) -> None:
    folder = project / ".boocode" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cached.py").write_text(
        'workflow = {"name": "cached", "description": "three agents", "args": '
        '{"x": {"type": "string"}, "y": {"type": "string"}}}\n' + CACHED
    )


def _steps(frames: list[Frame]) -> list[tuple[str, str]]:
    return [(f.agent_id, f.state) for f in frames if isinstance(f, WorkflowStep)
            and f.state in ("started", "cached")]


def test_the_cache_skips_unchanged_agents_wherever_they_stand(runtime: Runtime) -> None:
    _write_workflow(runtime.settings.project)
    manager = runtime.workflows
    assert "cached" in [w.name for w in manager.list(refresh=True)]
    frames = _frames(runtime)
    manager.wait(manager.run("cached", {"x": "one", "y": "two"}), timeout=60)
    assert _steps(frames) == [("alpha", "started"), ("beta", "started"), ("gamma", "started")]
    frames.clear()
    again = manager.wait(manager.run("cached", {"x": "one", "y": "two"}), timeout=60)
    assert _steps(frames) == [("alpha", "cached"), ("beta", "cached"), ("gamma", "started")]
    assert again.agents_run == 1
    assert any(isinstance(f, WorkflowLog) and f.message.startswith("cached alpha ")
               for f in frames)
    frames.clear()
    manager.wait(manager.run("cached", {"x": "one", "y": "CHANGED"}), timeout=60)
    assert _steps(frames) == [("alpha", "cached"), ("beta", "started"), ("gamma", "started")]


def test_a_new_kernel_reuses_the_cache_from_the_table(tmp_path: Path) -> None:
    first = Runtime()
    _write_workflow(first.settings.project)
    first.workflows.wait(first.workflows.run("cached", {"x": "1", "y": "2"}), timeout=60)
    first.shutdown()
    config.reset()
    second = Runtime()  # a fresh process would build exactly this: nothing in memory
    try:
        frames = _frames(second)
        second.workflows.wait(second.workflows.run("cached", {"x": "1", "y": "2"}), timeout=60)
        assert _steps(frames)[:2] == [("alpha", "cached"), ("beta", "cached")]
    finally:
        second.shutdown()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("deep-research", {"question": "Is DuckDB good for traces?"}),
        ("multi-review", {"path": "."}),
        ("plan-verify", {"goal": "Add a CSV export"}),
        ("bounty-hunt", {"target": "."}),
    ],
)
def test_each_builtin_workflow_runs_on_the_simulator(
    runtime: Runtime, name: str, args: dict[str, object]
) -> None:
    manager: WorkflowManager = runtime.workflows
    status = manager.wait(manager.run(name, args), timeout=120)
    assert status.state == "completed", status.error
    assert status.agents_done >= 2


def test_a_settings_change_after_the_engine_stopped_is_taken_quietly(runtime: Runtime) -> None:
    runtime.workflows.run_script("result = 1")  # the manager exists and listens
    runtime.engine.shutdown()  # as at the start of a runtime's shutdown
    config.update(workflow_max_concurrent=5)
    assert runtime.settings.workflow_max_concurrent == 5
