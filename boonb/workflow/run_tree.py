"""A workflow run's own rows in the trace tree: the run, its phases and its agent calls.

The run is one trace tree (DESIGN section 3): its ``workflow`` row (id = run id) is the
root, each phase a ``phase`` row under it, each agent call an ``agent`` row under its
phase (or the run), and the agent's chat hangs under its ``agent`` row. An agent served
from the result cache is an ``agent`` row with outcome ``cached`` and no children. Rows
are published as ``tool_trace:complete`` frames when their part ends, like any call's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter

from pydantic import JsonValue

from boonb.bus import Bus
from boonb.frames import (
    Outcome,
    ToolTraceComplete,
    TraceKind,
    TraceRecord,
    WorkflowState,
    WorkflowStep,
)

OUTCOMES: dict[WorkflowState, Outcome] = {
    "pending": "cancelled",
    "running": "cancelled",
    "completed": "success",
    "failed": "error",
    "cancelled": "cancelled",
    "interrupted": "cancelled",
}
"""The outcome of a run's ``workflow`` row, by the state it ended in."""


@dataclass(slots=True)
class Span:
    """A run, phase or agent under way: its row's id and parent, and when it started."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    started_at: datetime
    started: float


def open_span(span_id: uuid.UUID, parent_id: uuid.UUID | None) -> Span:
    return Span(span_id, parent_id, datetime.now(UTC), perf_counter())


class RunRows:
    """Publishes the rows of run ``run_id``, each under its parent, as its part ends."""

    def __init__(self, run_id: uuid.UUID, *, session_id: uuid.UUID, bus: Bus) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self.bus = bus

    def record_agent(
        self,
        span: Span,
        step: WorkflowStep,
        input: JsonValue,
        outcome: Outcome,
        *,
        output: JsonValue = None,
        error: str | None = None,
    ) -> None:
        self.record(
            span,
            kind="agent",
            name=step.label,  # the tree names the call as the steps and the log do
            outcome=outcome,
            input=input,
            output=output,
            error=error,
            agent_id=step.agent_id,
        )

    def record(
        self,
        span: Span,
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
