"""How frames and records become table rows (run on the writer's thread, not the caller's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from boonb.frames import CacheSegment, Frame, TraceRecord, WorkflowLog, WorkflowStep

Action = Literal["insert", "upsert"]

TRACE_COLUMNS = (
    "id", "session_id", "chat_id", "turn_number", "kind", "tool_name", "call_id", "agent_id",
    "workflow_run_id", "parent_id", "input", "output", "started_at", "finished_at", "latency_ms",
    "input_tokens", "output_tokens", "cache_tokens", "cache_miss_tokens", "reasoning_tokens",
    "tokens_used", "cost_usd", "error", "outcome", "root_id",
)  # fmt: skip

CACHE_COLUMNS = (
    "trace_id", "chat_id", "turn_number", "segment", "tokens", "hit_tokens", "miss_tokens", "hash",
    "prefix_hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    """A row for any table: ``values`` follow ``columns``; JSON columns hold JSON text.

    ``upsert`` replaces the row with the same primary key (e.g. a session's new state).
    """

    table: str
    columns: tuple[str, ...]
    values: tuple[Any, ...]
    action: Action = "insert"


def to_json(value: Any) -> str | None:
    """JSON text for a JSON column; a Python string becomes a JSON string, not raw text."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def make_row(
    table: str,
    values: dict[str, Any],
    *,
    json_columns: frozenset[str] = frozenset(),
    action: Action = "insert",
) -> Row:
    """A :class:`Row` from a column -> value mapping, serialising the JSON columns."""
    columns = tuple(values)
    return Row(
        table,
        columns,
        tuple(to_json(values[c]) if c in json_columns else values[c] for c in columns),
        action,
    )


def cache_row(trace: TraceRecord, segment: CacheSegment) -> Row:
    values = (
        trace.id, trace.chat_id, trace.turn_number, segment.segment, segment.tokens,
        segment.hit_tokens, segment.miss_tokens, segment.hash, segment.prefix_hash,
    )  # fmt: skip
    return Row("cache_stats", CACHE_COLUMNS, values)


STEP_COLUMNS = (
    "trace_id", "run_id", "agent_id", "label", "call_index", "phase", "state", "chat_id",
    "input_preview", "tokens_used", "error", "started_at", "finished_at", "duration_ms",
    "last_log", "step_index",
)  # fmt: skip
LOG_COLUMNS = (
    "run_id", "seq", "logged_at", "phase", "agent_id", "label", "trace_id", "level", "message",
)  # fmt: skip


def step_row(step: WorkflowStep) -> Row:
    """A ``workflow_steps`` row: a step's latest frame replaces its earlier ones."""
    values = (
        step.trace_id, step.run_id, step.agent_id, step.label or step.agent_id, step.call_index,
        step.phase, step.state, step.chat_id, step.input_preview, step.tokens_used, step.error,
        step.started_at, step.finished_at, step.duration_ms, step.last_log, step.index,
    )  # fmt: skip
    return Row("workflow_steps", STEP_COLUMNS, values, "upsert")


def log_row(line: WorkflowLog) -> Row:
    """A ``workflow_logs`` row: one line of a run's log."""
    values = (
        line.run_id, line.seq, line.at, line.phase, line.agent_id, line.label, line.trace_id,
        line.level, line.message,
    )  # fmt: skip
    return Row("workflow_logs", LOG_COLUMNS, values)


def frame_rows(frame: Frame) -> list[Row]:
    """The rows a stored frame other than a trace becomes (see :data:`STORED_FRAME_TYPES`).

    A step without a ``trace_id`` (sent by a runner older than its row) has no key to be
    stored under, and is not stored.
    """
    if isinstance(frame, WorkflowStep):
        return [step_row(frame)] if frame.trace_id is not None else []
    if isinstance(frame, WorkflowLog):
        return [log_row(frame)]
    return []


STORED_FRAME_TYPES = frozenset(
    {"tool_trace:complete", "model_call:complete", "workflow:step", "workflow:log"}
)
"""The frames the runtime hands the writer: traces, and what a workflow run's pane shows
again later (its steps and log lines)."""
