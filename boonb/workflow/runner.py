"""The host side of one workflow run: what ``agent``, ``parallel``, ``phase`` and ``log`` do.

The sandboxed script asks; this answers, on the engine's loop. Each agent call goes
through the agent runtime (same traces and tools, its own chat, tagged with the run
id and agent id), after a look in the result cache. Budgets are hard ceilings (see
:mod:`boonb.workflow.budgets`).

The run is one trace tree: :mod:`boonb.workflow.run_tree` publishes its rows (the run,
its phases, its agent calls). Each agent call is a step: :mod:`boonb.workflow.run_steps`
labels them and keeps the steps and the run's log lines (:attr:`WorkflowRun.steps`,
:attr:`WorkflowRun.logs`) for its pane.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import JsonValue

from boonb.agent.tools.registry import ToolRegistry
from boonb.bus import Bus
from boonb.errors import WorkflowError
from boonb.executors import AgentRunSpec, Executor
from boonb.frames import (
    Frame,
    ModelCallComplete,
    Outcome,
    StepState,
    ToolTraceStart,
    WorkflowLog,
    WorkflowState,
    WorkflowStatus,
    WorkflowStep,
)
from boonb.ids import new_id
from boonb.workflow.budgets import Budget, BudgetExceeded, Scope
from boonb.workflow.cache import ResultCache, cache_key
from boonb.workflow.run_steps import RunSteps, as_prompt, preview
from boonb.workflow.run_tree import OUTCOMES, RunRows, Span, open_span

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


NO_SESSION = uuid.UUID(int=0)
"""The session of a run's own rows when the run was not told its kernel session."""


class WorkflowRun:
    """One run's agents, budgets, phase and progress.

    ``executor`` gives, at each agent call, where the agent runs: the kernel's executor,
    which ``%boonb config executor=...`` may change (or fail to connect, failing that step).
    """

    def __init__(
        self,
        run_id: uuid.UUID,
        workflow: str,
        *,
        bus: Bus,
        executor: Callable[[], Executor],
        budget: int,
        cache: ResultCache | None,
        default_model: str,
        session_id: uuid.UUID | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        # ``tools`` (the kernel's) lets a step naming a tool nobody registered fail before
        # its agent is sent to the executor, which may be a Dask worker.
        self.run_id = run_id
        self.session_id = session_id or NO_SESSION
        self.workflow = workflow
        self.bus = bus
        self.executor = executor
        self.tools = tools
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
        self.agents_cached = 0
        self.agents_failed = 0
        self.finished_at: datetime | None = None
        self._rows = RunRows(run_id, session_id=self.session_id, bus=bus)
        self._steps = RunSteps(run_id, bus=bus)
        self._chats: dict[uuid.UUID, Scope] = {}
        self._chat_steps: dict[uuid.UUID, uuid.UUID] = {}
        self._chat_tokens: Counter[uuid.UUID] = Counter()
        self._run_span = open_span(run_id, None)
        self._phase_span: Span | None = None
        self._unsubscribe = [
            bus.subscribe(self._on_model_call, types={"model_call:complete"}),
            bus.subscribe(self._on_tool_start, types={"tool_trace:start"}),
        ]

    @property
    def started_at(self) -> datetime:
        return self._run_span.started_at

    @property
    def steps(self) -> dict[uuid.UUID, WorkflowStep]:
        """Every step as last sent, by ``trace_id``, in the order they started."""
        return self._steps.steps

    @property
    def logs(self) -> list[WorkflowLog]:
        """Every line logged, in order (``seq`` 1, 2, ...)."""
        return self._steps.logs

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def record_end(self, state: WorkflowState, error: str | None = None) -> None:
        """Record the run's ``workflow`` row, the root of its tree (once, when it ends)."""
        self._rows.record(
            self._run_span,
            kind="workflow",
            name=self.workflow,
            outcome=OUTCOMES[state],
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

    def labels(self, agent_ids: Sequence[str]) -> list[tuple[str, int]]:
        """Each next call's label and number (see :meth:`RunSteps.labels`)."""
        return self._steps.labels(agent_ids)

    async def run_agent(
        self,
        agent_id: str,
        input: JsonValue,
        *,
        scope: Scope | None = None,
        label: tuple[str, int] | None = None,
    ) -> str:
        """Run one call of a registered agent (or answer it from the cache); its content.

        ``label`` is the call's label and number from :meth:`labels`; a lone call gets its own.
        """
        spec = self.agents.get(agent_id)
        if spec is None:
            known = ", ".join(sorted(self.agents)) or "none"
            raise WorkflowError(f"no agent {agent_id!r} was registered; registered: {known}")
        scope = (scope or self.scope).inner(spec.budget)
        scope.check()
        name, number = label or self.labels([agent_id])[0]
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
        span = open_span(new_id(), (self._phase_span or self._run_span).id)
        step = WorkflowStep(
            run_id=self.run_id,
            agent_id=spec.id,
            phase=self.phase,
            state="started",
            trace_id=span.id,
            label=name,
            call_index=number,
            index=len(self.steps) + 1,
            input_preview=preview(input),
            started_at=span.started_at,
        )
        self.steps[span.id] = step  # its place in the run is taken now, before any wait
        if spec.cache and self.cache is not None:
            cached = await self._from_cache(self.cache, key, span, step, input)
            if cached is not None:
                return cached
        try:  # an unknown tool or an executor that cannot connect: the step fails unsent
            if tools is not None and self.tools is not None:
                self.tools.resolve(tools)
            executor = self.executor()
        except Exception as exc:
            self._fail(span, step, input, str(exc), None)
            raise
        run = AgentRunSpec(
            chat_id=uuid.uuid4(),  # known before the run: the step and budgets go by it
            prompt=as_prompt(input),
            system_prompt=spec.prompt,
            model=spec.model,
            tools=tuple(tools) if tools is not None else None,
            max_turns=AGENT_MAX_TURNS,
            agent_id=spec.id,
            workflow_run_id=self.run_id,
            parent_trace_id=span.id,  # under its agent row, in the tree
            parent_root_id=self.run_id,
        )
        chat_id = run.chat_id
        step = replace(step, chat_id=chat_id)
        task = asyncio.current_task()
        assert task is not None
        self._chats[chat_id] = scope
        self._chat_steps[chat_id] = span.id
        scope.enter(task)
        self._steps.send(step)
        self.agents_run += 1
        try:
            result = await executor.run_agent(run)
        except asyncio.CancelledError:
            spent = next((b for b in scope.budgets if b.exceeded), None)
            if spent is None:
                self._end_step(span, step, "cancelled", chat_id=chat_id)
                self._rows.record_agent(span, step, input, "cancelled")
                raise
            task.uncancel()  # the budget cancelled it: report that, not a cancellation
            self._fail(span, step, input, spent.message(), chat_id)
            raise BudgetExceeded(spent.message()) from None
        except Exception as exc:  # AgentError, or a bug: either way the step failed
            self._fail(span, step, input, str(exc), chat_id)
            raise
        finally:
            scope.leave(task)
            self._chats.pop(chat_id, None)
            self._chat_steps.pop(chat_id, None)
        self.agents_done += 1
        self._rows.record_agent(span, step, input, "success", output=result.content)
        self._end_step(span, step, "completed", chat_id=chat_id)
        self._status()
        content: str = result.content
        if spec.cache and self.cache is not None:
            self.cache.put(key, agent_id=spec.id, result=content)
        return content

    async def _from_cache(
        self, cache: ResultCache, key: str, span: Span, step: WorkflowStep, input: JsonValue
    ) -> str | None:
        """The call's cached result, its step and row closed as ``cached``; None on a miss."""
        try:
            hit = await asyncio.to_thread(cache.get, key)
        except asyncio.CancelledError:  # cancelled before it ran: still a closed step
            self._end_step(span, step, "cancelled")
            self._rows.record_agent(span, step, input, "cancelled")
            raise
        if hit is None:
            return None
        self.log(f"cached {step.label} {key[:12]}", step=step)
        self.agents_done += 1
        self.agents_cached += 1
        self._end_step(span, step, "cached")
        self._rows.record_agent(span, step, input, "cached", output=hit.result)
        self._status()
        return str(hit.result)

    async def parallel(
        self, items: Sequence[tuple[str, JsonValue]], *, budget: Budget | None = None
    ) -> list[str | None]:
        """Run agents at once; a failed agent's slot is None (its error is logged)."""
        scope = self.scope.inner(budget)
        labels = self.labels([agent_id for agent_id, _ in items])
        outcomes = await asyncio.gather(
            *(
                self.run_agent(agent_id, value, scope=scope, label=label)
                for (agent_id, value), label in zip(items, labels, strict=True)
            ),
            return_exceptions=True,
        )
        results: list[str | None] = []
        for outcome in outcomes:
            if isinstance(outcome, BudgetExceeded):
                raise outcome
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):  # run_agent logged it with its step
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
        span = self._phase_span = open_span(new_id(), (outer_span or self._run_span).id)
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
            self._rows.record(span, kind="phase", name=name, outcome=outcome)
        return {agent_id: result for (agent_id, _), result in zip(items, results, strict=True)}

    def log(
        self,
        message: str,
        *,
        agent_id: str | None = None,
        step: WorkflowStep | None = None,
        level: Literal["info", "error"] = "info",
    ) -> None:
        """Log a line of the run, about one step when ``step`` is given."""
        self._steps.log(message, phase=self.phase, agent_id=agent_id, step=step, level=level)

    # Bookkeeping.

    def _on_model_call(self, frame: Frame) -> None:
        assert isinstance(frame, ModelCallComplete)
        chat_id = frame.trace.chat_id
        scope = self._chats.get(chat_id)
        if scope is not None:
            self.tokens_used += frame.trace.tokens_used
            self._chat_tokens[chat_id] += frame.trace.tokens_used
            scope.charge(frame.trace.tokens_used)

    def _on_tool_start(self, frame: Frame) -> None:
        """Log each tool call one of the run's agents starts (``→ read_file``)."""
        assert isinstance(frame, ToolTraceStart)
        trace_id = self._chat_steps.get(frame.chat_id)
        step = self.steps.get(trace_id) if trace_id is not None else None
        if step is not None:
            self.log(f"→ {frame.tool_name}", step=step)

    def _fail(
        self,
        span: Span,
        step: WorkflowStep,
        input: JsonValue,
        error: str,
        chat_id: uuid.UUID | None,
    ) -> None:
        self.agents_done += 1
        self.agents_failed += 1
        self.log(f"agent {step.label} failed: {error}", step=step, level="error")
        self._end_step(span, step, "failed", chat_id=chat_id, error=error)
        self._rows.record_agent(span, step, input, "error", error=error)
        self._status()

    def _end_step(
        self,
        span: Span,
        step: WorkflowStep,
        state: StepState,
        *,
        chat_id: uuid.UUID | None = None,
        error: str | None = None,
    ) -> None:
        tokens_used = self._chat_tokens.pop(chat_id, 0) if chat_id is not None else 0
        self._steps.end(step, state, started=span.started, tokens_used=tokens_used, error=error)

    def _status(self, state: WorkflowState = "running", error: str | None = None) -> None:
        self.bus.publish(self.status_frame(state, error))

    def status_frame(self, state: WorkflowState, error: str | None = None) -> WorkflowStatus:
        """The run's status now; a final state marks the run finished (once)."""
        if state not in ("pending", "running") and self.finished_at is None:
            self.finished_at = datetime.now(UTC)
        return WorkflowStatus(
            run_id=self.run_id,
            workflow=self.workflow,
            state=state,
            phase=self.phase,
            agents_done=self.agents_done,
            agents_total=self.agents_total,
            tokens_used=self.tokens_used,
            error=error,
            agents_cached=self.agents_cached,
            agents_failed=self.agents_failed,
            budget=self.budget.limit,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )
