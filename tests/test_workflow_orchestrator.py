"""What the orchestrator view and REST get from the workflow manager, on the simulator.

Distinct labels for every agent call, a run's steps and log lines stored and shown again from
a new runtime, arguments checked per argument without running, cancel and re-run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boonb import config
from boonb.errors import WorkflowError
from boonb.frames import Frame, WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.store import RunDetail
from boonb.workflow import manager as manager_module
from boonb.workflow.discovery import WorkflowArgsError
from boonb.workflow.manager import MAX_BUDGET
from tests.test_workflow_tree import workflow_runtime

pytestmark = pytest.mark.slow

SCRIPT = """
log("start")
writer = agent("writer", prompt="You write one line.")
critic = agent("critic", prompt="You criticise.")
drafts = phase("draft", agents=[(writer, "read the notes"), (writer, "about geese"),
                                (critic, "say hello")])
verdict = critic.run("judge: " + drafts["critic"])
log("done")
result = {"verdict": verdict, "drafts": sorted(drafts)}
"""

CACHED = """
workflow = {
    "name": "pair",
    "description": "Two agents, one called twice.",
    "args": {
        "topic": {"type": "string", "description": "What to write about."},
        "count": {"type": "integer", "description": "How many.", "default": 2},
    },
}

def run(args):
    a = agent("alpha", prompt="You summarise.")
    b = agent("beta", prompt="You translate.")
    both = parallel([(a, args["topic"]), (a, args["topic"] + " again"), (b, args["topic"])])
    return both
"""


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    yield from workflow_runtime()


def _record(runtime: Runtime) -> list[Frame]:
    seen: list[Frame] = []
    runtime.bus.subscribe(seen.append, types={"workflow:step", "workflow:log", "workflow:status"})
    return seen


def _latest_steps(frames: list[Frame], run_id: uuid.UUID) -> list[WorkflowStep]:
    """The view's fold: the latest frame of each step, in the steps' order."""
    steps: dict[uuid.UUID | None, WorkflowStep] = {}
    for frame in frames:
        if isinstance(frame, WorkflowStep) and frame.run_id == run_id:
            steps[frame.trace_id] = frame
    return sorted(steps.values(), key=lambda step: step.index)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    from pydantic import TypeAdapter

    return [TypeAdapter(type(item)).dump_python(item, mode="json") for item in items]


def _write_pair(project: Path) -> None:
    folder = project / ".boocode" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pair.py").write_text(CACHED)


def test_deep_research_names_each_analysis_apart_in_steps_logs_and_tree(
    runtime: Runtime,
) -> None:
    frames = _record(runtime)
    manager = runtime.workflows
    run_id = manager.run("deep-research", {"question": "Is DuckDB good for traces?"})
    assert manager.wait(run_id, timeout=120).state == "completed"
    steps = _latest_steps(frames, run_id)
    analysts = sorted(s.label for s in steps if s.agent_id == "analyst")
    assert analysts == ["analyst #1", "analyst #2", "analyst #3"]
    labels = [s.label for s in steps]
    assert len(set(labels)) == len(labels) == 7  # 3 searchers, 3 analyses, 1 synthesis
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows = con.execute(
            "SELECT id, tool_name FROM tool_traces WHERE root_id = ? AND kind = 'agent'", [run_id]
        ).fetchall()
    assert {(s.trace_id, s.label) for s in steps} == set(rows)  # the tree names them alike
    logged = {f.label for f in frames if isinstance(f, WorkflowLog) and f.label}
    assert logged and logged <= set(labels)
    assert all(s.state == "completed" and s.duration_ms is not None for s in steps)
    assert all(s.started_at and s.finished_at and s.chat_id for s in steps)


def test_a_runs_steps_logs_and_result_read_back_the_same_from_a_new_runtime() -> None:
    first = next(workflow_runtime())
    frames = _record(first)
    run_id = first.workflows.run_script(SCRIPT)
    assert first.workflows.wait(run_id, timeout=120).state == "completed"
    live = first.workflows.detail(run_id)
    first.shutdown()
    config.reset()
    second = Runtime()  # what a restarted kernel builds: nothing of the run in memory
    try:
        stored = second.workflows.detail(run_id)
    finally:
        second.shutdown()
    assert live.live and not stored.live
    steps = _latest_steps(frames, run_id)
    logs = [f for f in frames if isinstance(f, WorkflowLog) and f.run_id == run_id]
    assert [s.label for s in steps] == ["writer #1", "writer #2", "critic", "critic #2"]
    assert any(line.message == "→ read_file" and line.label == "writer #1" for line in logs)
    running = [f for f in frames if isinstance(f, WorkflowStep) and f.label == "writer #1"]
    assert [(f.state, f.last_log) for f in running] == [
        ("started", None), ("completed", "→ read_file"),
    ]  # fmt: skip
    assert _dump(stored.steps) == _dump(steps) == _dump(live.steps)
    assert _dump(stored.logs) == _dump(logs) == _dump(live.logs)
    assert stored.logs_total == len(logs) and [line.seq for line in logs] == list(
        range(1, len(logs) + 1)
    )
    assert stored.result == live.result and isinstance(stored.result, dict)
    final = [f for f in frames if isinstance(f, WorkflowStatus)][-1]
    assert stored.status.state == final.state == "completed"
    assert (stored.status.agents_done, stored.status.agents_total) == (4, 4)
    assert stored.status.tokens_used == final.tokens_used > 0
    assert stored.status.started_at == final.started_at
    assert stored.status.finished_at == final.finished_at


def test_arguments_are_checked_per_argument_and_a_bad_run_starts_nothing(
    runtime: Runtime,
) -> None:
    frames = _record(runtime)
    manager = runtime.workflows
    check = manager.check_args("deep-research", {"angles": "one angle", "depth": 3})
    assert not check.ok and check.values is None
    assert {e.arg: e.message for e in check.errors} == {
        "question": "required: give a string",
        "angles": "must be a list, got 'one angle'",
        "depth": "'depth' is not an argument of this workflow; its arguments: question, "
        "angles, tools",
    }
    good = manager.check_args("deep-research", {"question": "q"})
    assert good.ok and good.errors == [] and good.values is not None
    assert good.values["angles"] == [
        "background and definitions", "recent developments", "counter-evidence",
    ]  # fmt: skip
    with pytest.raises(WorkflowArgsError) as raised:
        manager.run("deep-research", {"question": 42})
    assert set(raised.value.problems) == {"question"}
    assert frames == []
    assert manager.runs().runs == []


def test_cancel_ends_the_run_cancelled_with_its_steps_and_traces_closed(
    runtime: Runtime,
) -> None:
    runtime.simulator().add_rule(Rule("slow", reply="finally", latency=30))
    manager = runtime.workflows
    started = threading.Event()
    runtime.bus.subscribe(
        lambda f: started.set() if isinstance(f, WorkflowStep) and f.state == "started" else None,
        types={"workflow:step"},
    )
    run_id = manager.run_script(
        'both = parallel([(agent("a", prompt="p"), "slow one"), (agent("a", prompt="p"), "slow")])'
    )
    assert started.wait(30)
    sim, deadline = runtime.simulator(), time.monotonic() + 30
    while len(sim.requests) < 2 and time.monotonic() < deadline:  # both in their model calls
        time.sleep(0.01)
    assert len(sim.requests) == 2
    assert manager.cancel(run_id)
    assert manager.wait(run_id, timeout=30).state == "cancelled"
    detail = manager.detail(run_id)
    assert detail.status.state == "cancelled" and detail.status.finished_at is not None
    assert [s.state for s in detail.steps] == ["cancelled", "cancelled"]
    assert all(s.finished_at is not None for s in detail.steps)
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows = con.execute(
            "SELECT kind, outcome, finished_at IS NOT NULL FROM tool_traces WHERE root_id = ?",
            [run_id],
        ).fetchall()
        stored = con.execute(
            "SELECT state FROM workflow_steps WHERE run_id = ?", [run_id]
        ).fetchall()
    kinds = {kind for kind, _, _ in rows}
    assert {"workflow", "agent", "model"} <= kinds
    assert {(outcome, closed) for _, outcome, closed in rows} == {("cancelled", True)}
    assert stored == [("cancelled",), ("cancelled",)]


def test_a_rerun_takes_the_same_arguments_and_every_agent_from_the_cache(
    runtime: Runtime,
) -> None:
    _write_pair(runtime.settings.project)
    manager = runtime.workflows
    manager.list(refresh=True)
    first = manager.run("pair", {"topic": "ducks"})
    assert manager.wait(first, timeout=60).state == "completed"
    again = manager.rerun(first)
    assert again != first
    status = manager.wait(again, timeout=60)
    assert status.state == "completed" and status.agents_cached == 3 and status.agents_run == 0
    detail = manager.detail(again)
    assert detail.args == {"topic": "ducks", "count": 2}
    assert [(s.label, s.state) for s in detail.steps] == [
        ("alpha #1", "cached"), ("alpha #2", "cached"), ("beta", "cached"),
    ]  # fmt: skip
    assert detail.status.agents_cached == 3
    assert detail.result == manager.detail(first).result


def test_a_run_of_an_earlier_kernel_reruns_from_its_stored_arguments() -> None:
    first = next(workflow_runtime())
    _write_pair(first.settings.project)
    run_id = first.workflows.run("pair", {"topic": "geese"})
    assert first.workflows.wait(run_id, timeout=60).state == "completed"
    script_run = first.workflows.run_script('result = agent("a", prompt="p").run("x")')
    first.workflows.wait(script_run, timeout=60)
    first.shutdown()
    config.reset()
    second = Runtime()
    try:
        again = second.workflows.rerun(run_id)
        status = second.workflows.wait(again, timeout=60)
        assert status.state == "completed" and status.agents_cached == 3
        assert second.workflows.detail(again).args == {"topic": "geese", "count": 2}
        with pytest.raises(Exception, match="ran a cell's script"):
            second.workflows.rerun(script_run)
    finally:
        second.shutdown()


def test_a_runs_report_is_a_readable_summary_as_its_repr(runtime: Runtime) -> None:
    manager = runtime.workflows
    run_id = manager.run_script(SCRIPT, budget=90_000)
    manager.wait(run_id, timeout=120)
    report = manager.report(run_id)
    text = repr(report)
    lines = text.splitlines()
    assert lines[0] == f"run {run_id}"
    assert lines[1].startswith("<cell> · completed · 4/4 agents · ")
    assert " of 90,000 tokens · " in lines[1]
    assert "steps:" in lines
    assert any(line.startswith("  ✓ [draft] writer #2: ") and "tokens" in line for line in lines)
    assert any(line.startswith("  ✓ critic #2: ") for line in lines)
    assert any(line.startswith("log (last 5 of ") for line in lines)
    assert "result: {" in lines and lines[-1] == "}"  # pretty-printed JSON
    assert isinstance(report.detail, RunDetail) and report.detail.status.run_id == run_id


def test_an_older_runs_pane_is_let_go_from_memory_and_read_from_the_store(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "KEPT_RUNS", 1)
    manager = runtime.workflows
    first = manager.run_script(SCRIPT)
    manager.wait(first, timeout=120)
    before = manager.detail(first)
    second = manager.run_script('result = agent("a", prompt="p").run("x")')
    manager.wait(second, timeout=60)
    after = manager.detail(first)
    assert before.live and not after.live and manager.detail(second).live
    assert after.model_dump() == {**before.model_dump(), "live": False}
    assert repr(manager.report(first)).splitlines()[1].startswith("<cell> · completed · 4/4")


@pytest.mark.parametrize("budget", [MAX_BUDGET + 1, 10**30, -5, 0])
def test_a_budget_no_run_can_have_is_refused_by_run_run_script_and_rerun_and_nothing_runs(
    runtime: Runtime, budget: int
) -> None:
    manager = runtime.workflows
    limit = f"from 1 to {MAX_BUDGET:,}"
    with pytest.raises(WorkflowError, match=limit):
        manager.run("deep-research", {"question": "q"}, budget=budget)
    with pytest.raises(WorkflowError, match=limit):
        manager.run_script("result = 1", budget=budget)
    assert manager.runs().runs == []
    done = manager.run_script("result = 1")
    assert manager.wait(done, timeout=60).state == "completed"
    with pytest.raises(WorkflowError, match=limit):
        manager.rerun(done, budget=budget)
    assert [r.run_id for r in manager.runs().runs] == [done]


def test_a_run_with_the_largest_budget_keeps_its_stored_row(runtime: Runtime) -> None:
    manager = runtime.workflows
    run_id = manager.run_script("result = 1", budget=MAX_BUDGET)
    assert manager.wait(run_id, timeout=60).state == "completed"
    assert [(r.run_id, r.budget, r.state) for r in manager.runs().runs] == [
        (run_id, MAX_BUDGET, "completed")
    ]
