"""The host side of one workflow run: what ``agent``, ``parallel``, ``phase`` and ``log`` do.

The sandboxed script asks; this answers, on the engine's loop. Each agent call goes
through the agent runtime (same traces and tools, its own chat, tagged with the run
id and agent id), after a look in the result cache. Budgets are hard ceilings (see
:mod:`boonb.workflow.budgets`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from boonb.agent.loop import AgentError
from boonb.bus import Bus
from boonb.frames import (
    Frame,
    ModelCallComplete,
    StepState,
    WorkflowLog,
    WorkflowState,
    WorkflowStatus,
    WorkflowStep,
    utcnow,
)
from boonb.workflow.budgets import Budget, BudgetExceeded, Scope
from boonb.workflow.cache import ResultCache, cache_key

log = logging.getLogger("boonb.workflow")

AGENT_MAX_TURNS = 8


class WorkflowError(Exception):
    """A call from the script that cannot be served (unknown agent, bad input)."""


@dataclass(frozen=True)
class AgentSpec:
    id: str
    prompt: str
    model: str | None = None
    tools: tuple[str, ...] | None = None
    budget: Budget | None = None
    cache: bool = True


AgentFactory = Callable[..., object]


class WorkflowRun:
    """One run's agents, budgets, phase and progress."""

    def __init__(
        self,
        run_id: uuid.UUID,
        workflow: str,
        *,
        bus: Bus,
        new_agent: AgentFactory,
        budget: int,
        cache: ResultCache | None,
        default_model: str,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.bus = bus
        self.new_agent = new_agent
        self.cache = cache
        self.default_model = default_model
        self.budget = Budget(budget)
        self.scope = Scope((self.budget,))
        self.agents: dict[str, AgentSpec] = {}
        self.budgets: dict[str, Budget] = {}
        self.phase: str | None = None
        self.agents_done = 0
        self.agents_total = 0
        self.tokens_used = 0
        self.agents_run = 0
        """Agents actually dispatched (not answered from the cache)."""
        self._chats: dict[uuid.UUID, Scope] = {}
        self._unsubscribe = bus.subscribe(self._on_model_call, types={"model_call:complete"})

    def close(self) -> None:
        self._unsubscribe()

    # The operations a script can ask for.

    def register(self, spec: AgentSpec) -> None:
        """Declare an agent; the same id again must mean the same agent."""
        if not spec.prompt.strip():
            raise WorkflowError(f"agent {spec.id!r} needs a prompt")
        known = self.agents.get(spec.id)
        if known is not None and known != spec:
            raise WorkflowError(f"agent id {spec.id!r} is already used by another agent")
        self.agents[spec.id] = spec

    def budget_for(self, budget_id: str, limit: int) -> Budget:
        """The budget a script made with ``budget(limit)``: one object however often it is used."""
        budget = self.budgets.get(budget_id)
        if budget is None:
            budget = self.budgets[budget_id] = Budget(limit, phase=self.phase)
        return budget

    async def run_agent(
        self, agent_id: str, input: JsonValue, *, scope: Scope | None = None
    ) -> str:
        spec = self.agents.get(agent_id)
        if spec is None:
            known = ", ".join(sorted(self.agents)) or "none"
            raise WorkflowError(f"no agent {agent_id!r} was registered; registered: {known}")
        scope = (scope or self.scope).inner(spec.budget)
        scope.check()
        self.agents_total += 1
        self._status()
        model = spec.model or self.default_model
        tools = list(spec.tools) if spec.tools is not None else None
        key = cache_key(
            prompt=spec.prompt,
            input=input,
            model=model,
            tools=tools if tools is not None else ["*"],
            options={"max_turns": AGENT_MAX_TURNS},
        )
        if spec.cache and self.cache is not None:
            hit = await asyncio.to_thread(self.cache.get, key)
            if hit is not None:
                self.log(f"cached {spec.id} {key[:12]}", agent_id=spec.id)
                self._step(spec.id, "cached")
                self.agents_done += 1
                self._status()
                return str(hit.result)
        agent = self.new_agent(
            model=spec.model,
            tools=tools,
            system_prompt=spec.prompt,
            agent_id=spec.id,
            workflow_run_id=self.run_id,
            max_turns=AGENT_MAX_TURNS,
        )
        chat_id: uuid.UUID = agent.chat_id  # type: ignore[attr-defined]
        task = asyncio.current_task()
        assert task is not None
        self._chats[chat_id] = scope
        scope.enter(task)
        self._step(spec.id, "started")
        self.agents_run += 1
        try:
            result = await agent.run(_as_prompt(input))  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            spent = next((b for b in scope.budgets if b.exceeded), None)
            if spent is None:
                self._step(spec.id, "cancelled")
                raise
            task.uncancel()  # the budget cancelled it: report that, not a cancellation
            self._step(spec.id, "failed", error=spent.message())
            raise BudgetExceeded(spent.message()) from None
        except AgentError as exc:
            self._step(spec.id, "failed", error=str(exc))
            raise
        finally:
            scope.leave(task)
            self._chats.pop(chat_id, None)
        self.agents_done += 1
        tokens = result.stats.usage.tokens_used
        self._step(spec.id, "completed", tokens=tokens)
        self._status()
        content: str = result.content
        if spec.cache and self.cache is not None:
            self.cache.put(key, agent_id=spec.id, result=content)
        return content

    async def parallel(
        self, items: Sequence[tuple[str, JsonValue]], *, budget: Budget | None = None
    ) -> list[str | None]:
        """Run agents at once; a failed agent's slot is None (its error is logged)."""
        scope = self.scope.inner(budget)
        outcomes = await asyncio.gather(
            *(self.run_agent(agent_id, value, scope=scope) for agent_id, value in items),
            return_exceptions=True,
        )
        results: list[str | None] = []
        for (agent_id, _), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, BudgetExceeded):
                raise outcome
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                self.log(f"agent {agent_id} failed: {outcome}", agent_id=agent_id)
                results.append(None)
            else:
                results.append(outcome)
        scope.check()
        return results

    async def run_phase(
        self, name: str, items: Sequence[tuple[str, JsonValue]], *, budget: Budget | None = None
    ) -> dict[str, str | None]:
        """Run a phase's agents at once under its own budget; results keyed by agent id."""
        outer = self.phase
        self.phase = name
        if budget is not None and budget.phase is None:
            budget.phase = name
        self._status()
        try:
            results = await self.parallel(items, budget=budget)
        finally:
            self.phase = outer
        return {agent_id: result for (agent_id, _), result in zip(items, results, strict=True)}

    def log(self, message: str, *, agent_id: str | None = None) -> None:
        self.bus.publish(
            WorkflowLog(
                run_id=self.run_id,
                phase=self.phase,
                agent_id=agent_id,
                message=message,
                at=utcnow(),
            )
        )

    # Bookkeeping.

    def _on_model_call(self, frame: Frame) -> None:
        assert isinstance(frame, ModelCallComplete)
        scope = self._chats.get(frame.trace.chat_id)
        if scope is not None:
            self.tokens_used += frame.trace.tokens_used
            scope.charge(frame.trace.tokens_used)

    def _step(
        self, agent_id: str, state: StepState, *, tokens: int = 0, error: str | None = None
    ) -> None:
        self.bus.publish(
            WorkflowStep(
                run_id=self.run_id,
                agent_id=agent_id,
                phase=self.phase,
                state=state,
                tokens_used=tokens,
                error=error,
            )
        )

    def _status(self, state: WorkflowState = "running", error: str | None = None) -> None:
        self.bus.publish(self.status_frame(state, error))

    def status_frame(self, state: WorkflowState, error: str | None = None) -> WorkflowStatus:
        return WorkflowStatus(
            run_id=self.run_id,
            workflow=self.workflow,
            state=state,
            phase=self.phase,
            agents_done=self.agents_done,
            agents_total=self.agents_total,
            tokens_used=self.tokens_used,
            error=error,
        )


def _as_prompt(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
