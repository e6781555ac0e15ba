"""A workflow run is one trace tree: run, phases, agents (one cached), model and tool calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from boonb import config
from boonb.runtime import Runtime
from boonb.sim import Rule

SCRIPT = """
writer = agent("writer", prompt="You write one line.")
critic = agent("critic", prompt="You criticise.")
first = phase("draft", agents=[(writer, "read the notes"), (critic, "say hello")])
again = phase("redo", agents=[(writer, "read the notes")])
result = {"first": sorted(first), "again": sorted(again)}
"""

Row = tuple[uuid.UUID, uuid.UUID | None, uuid.UUID, str, str, str, str | None]


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    yield from workflow_runtime()


def workflow_runtime() -> Iterator[Runtime]:
    """A runtime on the simulator whose agents read the notes when asked (a tool call)."""
    project = Path(config.get_settings().project)
    project.mkdir(parents=True, exist_ok=True)
    (project / "notes.txt").write_text("alpha\nbeta\n")
    rt = Runtime()
    rt.simulator().latency = 0
    rt.simulator().add_rule(
        Rule(
            "read the notes", tool_calls=[{"name": "read_file", "arguments": {"path": "notes.txt"}}]
        )
    )
    yield rt
    rt.shutdown()


def _run_rows(runtime: Runtime, run_id: uuid.UUID) -> list[Row]:
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows: list[Row] = con.execute(
            "SELECT id, parent_id, root_id, kind, tool_name, outcome, agent_id FROM tool_traces "
            "WHERE workflow_run_id = ? ORDER BY started_at",
            [run_id],
        ).fetchall()
    return rows


def run_two_phases(runtime: Runtime) -> uuid.UUID:
    manager = runtime.workflows
    run_id = manager.run_script(SCRIPT)
    status = manager.wait(run_id, timeout=120)
    assert status.state == "completed", status
    return run_id


@pytest.mark.slow
def test_two_phases_and_a_cached_agent_make_one_tree_with_the_right_parents(
    runtime: Runtime,
) -> None:
    run_id = run_two_phases(runtime)
    rows = _run_rows(runtime, run_id)
    by_id = {r[0]: r for r in rows}
    assert {r[2] for r in rows} == {run_id}  # one tree
    (workflow,) = [r for r in rows if r[3] == "workflow"]
    assert workflow[0] == run_id and workflow[1] is None and workflow[5] == "success"
    phases = {r[4]: r for r in rows if r[3] == "phase"}
    assert set(phases) == {"draft", "redo"}
    assert all(p[1] == run_id for p in phases.values())
    agents = [r for r in rows if r[3] == "agent"]
    placed = sorted((by_id[a[1]][4], a[4], a[5]) for a in agents)
    assert placed == [
        ("draft", "critic", "success"),
        ("draft", "writer", "success"),
        ("redo", "writer #2", "cached"),  # its second call: named apart in the tree
    ]
    (cached,) = [a for a in agents if a[5] == "cached"]
    assert not [r for r in rows if r[1] == cached[0]]  # a cached agent has no children
    models = [r for r in rows if r[3] == "model"]
    tools = [r for r in rows if r[3] == "tool"]
    assert models and tools
    for model in models:  # every model call hangs under the agent row of its agent
        assert by_id[model[1]][3] == "agent" and by_id[model[1]][6] == model[6]
    assert "read_file" in {call[4] for call in tools}
    for call in tools:  # every tool call hangs under the model call that asked for it
        assert by_id[call[1]][3] == "model" and by_id[call[1]][6] == call[6]
    assert len(rows) == 1 + 2 + 3 + len(models) + len(tools)
