"""How frames and records become table rows (run on the writer's thread, not the caller's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from boonb.frames import CacheSegment, TraceRecord

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


STORED_FRAME_TYPES = frozenset({"tool_trace:complete", "model_call:complete"})
