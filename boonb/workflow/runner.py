"""The host side of one workflow run: what ``agent``, ``parallel``, ``phase`` and ``log`` do.

The sandboxed script asks; this answers, on the engine's loop. Each agent call goes
through the agent runtime (same traces and tools, its own chat, tagged with the run
id and agent id), after a look in the result cache. Budgets are hard ceilings (see
:mod:`boonb.workflow.budgets`).

The run is one trace tree (DESIGN section 3): its ``workflow`` row (id = run id) is the
root, each phase a ``phase`` row under it, each agent call an ``agent`` row under its
phase (or the run), and the agent's chat hangs under its ``agent`` row. An agent served
from the result cache is an ``agent`` row with outcome ``cached`` and no children. Rows
are published as ``tool_trace:complete`` frames when their part ends, like any call's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter

from pydantic import JsonValue

from boonb.agent.loop import AgentError
from boonb.agent.recorder import TraceParent
from boonb.bus import Bus
from boonb.errors import WorkflowError
from boonb.frames import (
    Frame,
    ModelCallComplete,
    Outcome,
    StepState,
    ToolTraceComplete,
    TraceKind,
    TraceRecord,
    WorkflowLog,
    WorkflowState,
    WorkflowStatus,
    WorkflowStep,
    utcnow,
)
from boonb.ids import new_id
from boonb.workflow.budgets import Budget, BudgetExceeded, Scope
from boonb.workflow.cache import ResultCache, cache_key

log = logging.getLogger("boonb.workflow")

AGENT_MAX_TURNS = 8


@dataclass(frozen=True)
class AgentSpec:
    """An agent a workflow script declared: its id, prompt, model, tools, budget and caching."""

    id: str
    prompt: str
    model: str | None = None
    tools: tuple[str, ...] | None = None
    budget: Budget | None = None
    cache: bool = True


NewAgent = Callable[..., object]

NO_SESSION = uuid.UUID(int=0)
"""The session of a run's own rows when the run was not told its kernel session."""

_OUTCOMES: dict[WorkflowState, Outcome] = {
    "pending": "cancelled",
    "running": "cancelled",
    "completed": "success",
    "failed": "error",
    "cancelled": "cancelled",
    "interrupted": "cancelled",
}


@dataclass(slots=True)
class _Span:
    """A run, phase or agent under way: its row's id and parent, and when it started."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    started_at: datetime
    started: float


class WorkflowRun:
    """One run's agents, budgets, phase and progress."""

    def __init__(
        self,
        run_id: uuid.UUID,
        workflow: str,
        *,
        bus: Bus,
        new_agent: NewAgent,
        budget: int,
        cache: ResultCache | None,
        default_model: str,
        session_id: uuid.UUID | None = None,
    ) -> None:
        self.run_id = run_id
        self.session_id = session_id or NO_SESSION
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
        self._run_span = self._open(run_id, None)
        self._phase_span: _Span | None = None
        self._unsubscribe = bus.subscribe(self._on_model_call, types={"model_call:complete"})

    def close(self) -> None:
        self._unsubscribe()

    def record_end(self, state: WorkflowState, error: str | None = None) -> None:
        """Record the run's ``workflow`` row, the root of its tree (once, when it ends)."""
        self._record(
            self._run_span,
            kind="workflow",
            name=self.workflow,
            outcome=_OUTCOMES[state],
            output=None,
            error=error,
        )

    # The operations a script can ask for.

    def register(self, spec: AgentSpec) -> None:
        """Declare an agent; the same id again must mean the same agent."""
        if not spec.prompt.strip():
            raise WorkflowError(f'agent {spec.id!r} needs a prompt; give agent(..., prompt="...")')
        known = self.agents.get(spec.id)
        if known is not None and known != spec:
            raise WorkflowError(
                f"agent id {spec.id!r} is already used by another agent; give each agent its own id"
            )
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
        span = self._open(new_id(), (self._phase_span or self._run_span).id)
        if spec.cache and self.cache is not None:
            hit = await asyncio.to_thread(self.cache.get, key)
            if hit is not None:
                self.log(f"cached {spec.id} {key[:12]}", agent_id=spec.id)
                self._step(spec.id, "cached")
                self._record_agent(span, spec.id, input, "cached", output=hit.result)
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
            parent=TraceParent(span.id, self.run_id),  # under its agent row, in the run's tree
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
                self._record_agent(span, spec.id, input, "cancelled")
                raise
            task.uncancel()  # the budget cancelled it: report that, not a cancellation
            self._step(spec.id, "failed", error=spent.message())
            self._record_agent(span, spec.id, input, "error", error=spent.message())
            raise BudgetExceeded(spent.message()) from None
        except AgentError as exc:
            self._step(spec.id, "failed", error=str(exc))
            self._record_agent(span, spec.id, input, "error", error=str(exc))
            raise
        finally:
            scope.leave(task)
            self._chats.pop(chat_id, None)
        self.agents_done += 1
        tokens = result.stats.usage.tokens_used
        self._record_agent(span, spec.id, input, "success", output=result.content)
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
        outer, outer_span = self.phase, self._phase_span
        self.phase = name
        span = self._phase_span = self._open(new_id(), (outer_span or self._run_span).id)
        if budget is not None and budget.phase is None:
            budget.phase = name
        self._status()
        outcome: Outcome = "error"
        try:
            results = await self.parallel(items, budget=budget)
            outcome = "success"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.phase, self._phase_span = outer, outer_span
            self._record(span, kind="phase", name=name, outcome=outcome)
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

    # The run's own rows in the trace tree.

    @staticmethod
    def _open(span_id: uuid.UUID, parent_id: uuid.UUID | None) -> _Span:
        return _Span(span_id, parent_id, datetime.now(UTC), perf_counter())

    def _record_agent(
        self,
        span: _Span,
        agent_id: str,
        input: JsonValue,
        outcome: Outcome,
        *,
        output: JsonValue = None,
        error: str | None = None,
    ) -> None:
        self._record(
            span,
            kind="agent",
            name=agent_id,
            outcome=outcome,
            input=input,
            output=output,
            error=error,
            agent_id=agent_id,
        )

    def _record(
        self,
        span: _Span,
        *,
        kind: TraceKind,
        name: str,
        outcome: Outcome,
        input: JsonValue = None,
        output: JsonValue = None,
        error: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Publish a run, phase or agent row; its tokens stay on its model calls' rows."""
        record = TraceRecord(
            id=span.id,
            session_id=self.session_id,
            chat_id=self.run_id,  # the run's own rows belong to no chat
            turn_number=0,
            kind=kind,
            tool_name=name,
            agent_id=agent_id,
            workflow_run_id=self.run_id,
            parent_id=span.parent_id,
            root_id=self.run_id,
            input=input,
            output=output,
            started_at=span.started_at,
            finished_at=datetime.now(UTC),
            latency_ms=(perf_counter() - span.started) * 1000,
            error=error,
            outcome=outcome,
        )
        self.bus.publish(ToolTraceComplete(trace=record))

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
