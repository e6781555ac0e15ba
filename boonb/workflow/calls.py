"""Serve the sandboxed script's calls: map each validated ``ApiCall`` onto a WorkflowRun."""

from __future__ import annotations

from pydantic import JsonValue

from boonb.workflow.budgets import Budget
from boonb.workflow.runner import AgentSpec, WorkflowError, WorkflowRun
from boonb.workflow.sandbox import (
    AgentRegisterCall,
    AgentRunCall,
    ApiCall,
    BudgetSpec,
    LogCall,
    ParallelCall,
    PhaseCall,
)
from boonb.workflow.sandbox import AgentSpec as ScriptAgent


async def serve_call(run: WorkflowRun, call: ApiCall) -> JsonValue:
    """Answer one call; an exception reaches the script as ``WorkflowError``."""
    match call:
        case AgentRegisterCall(params=params):
            run.register(_spec(run, params.agent))
            return None
        case AgentRunCall(params=params):
            agent_id = _known(run, params.agent)
            scope = run.scope.inner(_budget(run, params.budget))
            return await run.run_agent(agent_id, params.input, scope=scope)
        case ParallelCall(params=params):
            items = [(_known(run, item.agent), item.input) for item in params.items]
            results: list[JsonValue] = list(
                await run.parallel(items, budget=_budget(run, params.budget))
            )
            return results
        case PhaseCall(params=params):
            items = [(_known(run, item.agent), item.input) for item in params.items]
            by_agent: dict[str, JsonValue] = dict(
                await run.run_phase(params.name, items, budget=_budget(run, params.budget))
            )
            return by_agent
        case LogCall(params=params):
            run.log(params.message)
            return None
    raise WorkflowError(f"unknown operation {call!r}")


def _known(run: WorkflowRun, agent: ScriptAgent) -> str:
    """Register the agent a call names (calls carry its full declaration) and return its id."""
    run.register(_spec(run, agent))
    return agent.id


def _spec(run: WorkflowRun, agent: ScriptAgent) -> AgentSpec:
    return AgentSpec(
        id=agent.id,
        prompt=agent.prompt,
        model=agent.model,
        tools=tuple(agent.tools) if agent.tools is not None else None,
        budget=_budget(run, agent.budget),
        cache=agent.cache,
    )


def _budget(run: WorkflowRun, spec: BudgetSpec | None) -> Budget | None:
    if spec is None:
        return None
    if spec.kind != "tokens":
        raise WorkflowError(
            "agents take token budgets; a step budget limits the script itself "
            "(%%workflow --budget sets tokens, the sandbox counts steps)"
        )
    return run.budget_for(spec.id, spec.limit)
