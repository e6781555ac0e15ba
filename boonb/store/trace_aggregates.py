"""Aggregates over traces: the answers for summaries, totals, highlights and cache figures.

Each query's SQL follows the model it fills: its columns come in the order of the fields
it computes.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from boonb.frames import CacheSegment, TraceKind


class SessionSummary(BaseModel):
    """Aggregates over every trace of one kernel session."""

    session_id: UUID
    chats: int
    traces: int
    model_calls: int
    tool_calls: int
    errors: int
    total_latency_ms: float
    mean_tool_latency_ms: float | None
    p95_latency_ms: float | None
    input_tokens: int
    """Prompt tokens, cache-read tokens included."""
    output_tokens: int
    """Completion tokens, reasoning tokens included."""
    cache_tokens: int
    """Prompt tokens read from cache."""
    reasoning_tokens: int
    tokens_used: int
    cost_usd: float | None
    cache_hit_rate: float | None
    """``cache_tokens / input_tokens``; None when no prompt tokens were sent."""


SUMMARY_SQL = """
SELECT
    count(DISTINCT chat_id),
    count(*),
    count(*) FILTER (kind = 'model'),
    count(*) FILTER (kind = 'tool'),
    count(*) FILTER (outcome = 'error'),
    coalesce(sum(latency_ms), 0),
    avg(latency_ms) FILTER (kind = 'tool'),
    quantile_cont(latency_ms, 0.95),
    coalesce(sum(input_tokens), 0),
    coalesce(sum(output_tokens), 0),
    coalesce(sum(cache_tokens), 0),
    coalesce(sum(reasoning_tokens), 0),
    coalesce(sum(tokens_used), 0),
    sum(cost_usd)
FROM tool_traces
WHERE session_id = ? AND kind IN ('model', 'tool')  -- a run's own rows are not calls
"""


class CacheBreak(BaseModel):
    """A model call whose cached prefix was broken by a change to an earlier-sent segment."""

    turn_number: int
    segment: str
    hit_tokens: int
    tokens: int

    @property
    def message(self) -> str:
        return f"cache broken by: {self.segment} changed at turn {self.turn_number}"


CACHE_BREAKS_SQL = """
WITH segments AS (
    SELECT turn_number, segment, hit_tokens, tokens, prefix_hash,
        lag(hash) OVER (PARTITION BY segment ORDER BY turn_number) AS previous_hash,
        list_position(['system', 'tools', 'history', 'attachments'], segment) AS position
    FROM cache_stats
    WHERE chat_id = ?
)
SELECT turn_number, arg_min(segment, position), arg_min(hit_tokens, position),
    arg_min(tokens, position)
FROM segments
WHERE previous_hash IS NOT NULL AND prefix_hash IS DISTINCT FROM previous_hash
GROUP BY turn_number
ORDER BY turn_number
"""


class TurnCache(BaseModel):
    """Prompt-cache figures of one turn's model call(s), with the per-segment breakdown."""

    turn_number: int
    input_tokens: int
    """Prompt tokens, cache-read tokens included."""
    cache_tokens: int
    """Prompt tokens read from cache."""
    segments: list[CacheSegment]
    broken_by: str | None
    """The first segment sent before that had changed (the reason for a miss), if any."""

    @property
    def hit_rate(self) -> float | None:
        return self.cache_tokens / self.input_tokens if self.input_tokens else None


class ChatTotals(BaseModel):
    """Cumulative figures of one chat (the trace viewer's footer)."""

    traces: int
    model_calls: int
    tool_calls: int
    errors: int
    input_tokens: int
    cache_tokens: int
    output_tokens: int
    tokens_used: int
    total_latency_ms: float
    max_latency_ms: float | None

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_tokens / self.input_tokens if self.input_tokens else None


CHAT_TOTALS_SQL = """
SELECT
    count(*),
    count(*) FILTER (kind = 'model'),
    count(*) FILTER (kind = 'tool'),
    count(*) FILTER (outcome = 'error'),
    coalesce(sum(input_tokens), 0),
    coalesce(sum(cache_tokens), 0),
    coalesce(sum(output_tokens), 0),
    coalesce(sum(tokens_used), 0),
    coalesce(sum(latency_ms), 0),
    max(latency_ms)
FROM tool_traces
WHERE chat_id = ?
"""


class SlowCall(BaseModel):
    """The slowest model or tool call of a chat, for its highlights."""

    tool_name: str
    kind: TraceKind
    turn_number: int
    latency_ms: float


class FailedCall(BaseModel):
    """A model or tool call of a chat that ended in an error, for its highlights."""

    tool_name: str
    turn_number: int
    error: str


class ChatHighlights(BaseModel):
    """What a chat's static summary points out: its turns, slowest calls and first errors."""

    turns: int
    slowest: list[SlowCall]
    errors: list[FailedCall]
