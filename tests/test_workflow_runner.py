"""The host side of workflow runs, on the simulator with real agents and a real store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from boonb.agent.loop import AgentResult
from boonb.agent.tools import UnknownToolError
from boonb.errors import ExecutorUnavailable
from boonb.executors import AgentRunSpec, Executor
from boonb.executors.local import LocalExecutor
from boonb.frames import Frame, WorkflowLog, WorkflowStep
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.workflow.budgets import Budget, BudgetExceeded
from boonb.workflow.cache import ResultCache
from boonb.workflow.runner import AgentSpec, WorkflowError, WorkflowRun


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime()
    rt.simulator().latency = 0
    yield rt
    rt.shutdown()


def _run(runtime: Runtime, *, budget: int = 100_000, cache: bool = True) -> WorkflowRun:
    return WorkflowRun(
        uuid.uuid4(),
        "test",
        bus=runtime.bus,
        executor=lambda: runtime.executor,
        tools=runtime.tools,
        budget=budget,
        cache=ResultCache(runtime.store) if cache else None,
        default_model="sim-chat",
    )


def _frames(runtime: Runtime) -> list[Frame]:
    seen: list[Frame] = []
    runtime.bus.subscribe(seen.append, types={"workflow:log", "workflow:step"})
    return seen


def test_agents_run_through_the_runtime_tagged_with_run_and_agent_ids(runtime: Runtime) -> None:
    run = _run(runtime)
    run.register(AgentSpec("writer", prompt="You write.", tools=()))
    result = runtime.engine.run(run.run_agent("writer", "a haiku about ducks"))
    assert result.startswith("[simulator]") and "haiku about ducks" in result
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows = con.execute(
            "SELECT kind, agent_id, workflow_run_id FROM tool_traces ORDER BY kind"
        ).fetchall()
    # The agent's row in the run's trace tree, and its chat's model call.
    assert rows == [("agent", "writer", run.run_id), ("model", "writer", run.run_id)]


def test_parallel_returns_none_for_a_failed_agent_and_the_others_results(
    runtime: Runtime,
) -> None:
    run = _run(runtime)
    frames = _frames(runtime)
    run.register(AgentSpec("a", prompt="A", tools=()))
    run.register(AgentSpec("broken", prompt="B", tools=("no_such_tool",)))
    run.register(AgentSpec("c", prompt="C", tools=()))
    results = runtime.engine.run(run.parallel([("a", "one"), ("broken", "two"), ("c", "three")]))
    assert results[1] is None
    assert "one" in results[0] and "three" in results[2]  # type: ignore[operator]
    assert any(isinstance(f, WorkflowLog) and "agent broken failed" in f.message for f in frames)


def test_a_shared_budget_stops_parallel_agents_with_the_message(runtime: Runtime) -> None:
    runtime.simulator().add_rule(
        Rule(".", role="any", tool_calls=[{"name": "list_files", "arguments": {}}])
    )
    run = _run(runtime, cache=False)
    for name in ("x", "y", "z"):
        run.register(AgentSpec(name, prompt="Loop.", tools=("list_files",)))
    with pytest.raises(
        BudgetExceeded,
        match=r"budget exceeded: used [\d,]+ of 5,000 tokens "
        r"in phase scan",
    ):
        runtime.engine.run(
            run.run_phase("scan", [("x", 1), ("y", 2), ("z", 3)], budget=Budget(5_000))
        )
    assert run.tokens_used >= 5_000

    def model_calls() -> int:
        runtime.store.writer.flush()
        with runtime.store.db.connection() as con:
            row = con.execute("SELECT count(*) FROM tool_traces WHERE kind = 'model'").fetchone()
        return int(row[0])  # type: ignore[index]

    stopped_at = model_calls()
    time.sleep(0.5)
    assert model_calls() == stopped_at  # nothing keeps running after the budget is spent


def test_a_second_identical_call_is_answered_from_the_cache(runtime: Runtime) -> None:
    frames = _frames(runtime)
    first = _run(runtime)
    first.register(AgentSpec("w", prompt="Write.", tools=()))
    one = runtime.engine.run(first.run_agent("w", "same input"))
    second = _run(runtime)
    second.register(AgentSpec("w", prompt="Write.", tools=()))
    two = runtime.engine.run(second.run_agent("w", "same input"))
    assert one == two and (first.agents_run, second.agents_run) == (1, 0)
    assert any(isinstance(f, WorkflowStep) and f.state == "cached" for f in frames)
    assert any(isinstance(f, WorkflowLog) and f.message.startswith("cached w ") for f in frames)
    third = _run(runtime)
    third.register(AgentSpec("w", prompt="Write.", tools=(), cache=False))
    runtime.engine.run(third.run_agent("w", "same input"))
    assert third.agents_run == 1


def test_unknown_agents_are_a_clear_error(runtime: Runtime) -> None:
    run = _run(runtime)
    with pytest.raises(WorkflowError, match="no agent 'ghost' was registered"):
        runtime.engine.run(run.run_agent("ghost", "x"))


def test_a_step_naming_an_unknown_tool_fails_before_its_agent_reaches_the_executor(
    runtime: Runtime,
) -> None:
    asked: list[AgentRunSpec] = []

    class Refusing(LocalExecutor):
        async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
            asked.append(spec)
            return await super().run_agent(spec)

    runtime.use_executor(Refusing(runtime.agent_factory))
    frames = _frames(runtime)
    run = _run(runtime)
    run.register(AgentSpec("broken", prompt="B", tools=("no_such_tool",)))
    with pytest.raises(UnknownToolError, match="no_such_tool"):
        runtime.engine.run(run.run_agent("broken", "x"))
    assert asked == [] and run.agents_run == 0
    steps = [f for f in frames if isinstance(f, WorkflowStep)]
    assert [(s.state, s.chat_id) for s in steps][-1] == ("failed", None)


def test_a_step_whose_executor_cannot_connect_fails_without_naming_a_chat(
    runtime: Runtime,
) -> None:
    def unreachable() -> Executor:
        raise ExecutorUnavailable("no Dask scheduler answered at tcp://10.0.0.9:8786")

    frames = _frames(runtime)
    run = _run(runtime, cache=False)
    run.executor = unreachable
    run.register(AgentSpec("w", prompt="Write.", tools=()))
    with pytest.raises(ExecutorUnavailable, match="no Dask scheduler"):
        runtime.engine.run(run.run_agent("w", "x"))
    assert run.agents_run == 0
    steps = [f for f in frames if isinstance(f, WorkflowStep)]
    assert [(s.state, s.chat_id) for s in steps] == [("failed", None)]


def test_each_step_runs_on_the_executor_of_the_moment_under_its_agent_row(
    runtime: Runtime,
) -> None:
    asked: list[AgentRunSpec] = []

    class Noting(LocalExecutor):
        async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
            asked.append(spec)
            return await super().run_agent(spec)

    frames = _frames(runtime)
    run = _run(runtime, cache=False)
    run.register(AgentSpec("w", prompt="Write.", tools=()))
    runtime.engine.run(run.run_agent("w", "first"))  # on the runtime's own executor
    runtime.use_executor(Noting(runtime.agent_factory))
    runtime.engine.run(run.run_agent("w", {"n": 2}))
    (spec,) = asked
    assert spec.prompt == '{"n": 2}' and spec.system_prompt == "Write."
    assert (spec.agent_id, spec.workflow_run_id) == ("w", run.run_id)
    assert spec.parent_root_id == run.run_id  # in the run's trace tree
    step = [f for f in frames if isinstance(f, WorkflowStep) and f.state == "started"][-1]
    # The step knows its chat (and its agent row) before the run: the spec's.
    assert (step.chat_id, step.trace_id) == (spec.chat_id, spec.parent_trace_id)
