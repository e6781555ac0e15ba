"""What one run (one prompt) of an agent did: why it stopped, its counters, its summary line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from boonb.providers import ChatResult, Usage

StopReason = Literal["final", "max_turns", "budget", "cancelled", "error"]


@dataclass
class RunStats:
    """What one run did; the numbers behind the one-line summary."""

    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    cache_savings: float | None = None

    def add_model_call(self, result: ChatResult) -> None:
        self.usage = self.usage + result.usage
        if result.cost is not None:
            self.cost = (self.cost or 0.0) + result.cost
        if result.cache_savings is not None:
            self.cache_savings = (self.cache_savings or 0.0) + result.cache_savings

    def add_run(self, stats: RunStats) -> None:
        """Add another run's numbers (an agent's ``total`` over all its runs)."""
        self.turns += stats.turns
        self.tool_calls += stats.tool_calls
        self.tool_errors += stats.tool_errors
        self.usage = self.usage + stats.usage
        for name in ("cost", "cache_savings"):
            value = getattr(stats, name)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0.0) + value)


@dataclass
class AgentResult:
    """The outcome of one run (one prompt) of an agent."""

    chat_id: uuid.UUID
    content: str
    stop_reason: StopReason
    stats: RunStats
    wall_time_s: float
    error: str | None = None

    @property
    def cache_hit_rate(self) -> float | None:
        usage = self.stats.usage
        return usage.cache_tokens / usage.input_tokens if usage.input_tokens else None

    def summary(self) -> str:
        stats, usage = self.stats, self.stats.usage
        if usage.reported:
            tokens = f"{usage.tokens_used:,} tokens"
        elif usage.tokens_used:
            tokens = f"at least {usage.tokens_used:,} tokens (not every call reported usage)"
        else:
            tokens = "usage not reported"
        parts = [
            f"{stats.turns} turn{'s' * (stats.turns != 1)}",
            f"{stats.tool_calls} tool call{'s' * (stats.tool_calls != 1)}",
            tokens,
        ]
        rate = self.cache_hit_rate
        parts.append(f"cache {rate:.0%}" if rate is not None else "cache n/a")
        if not usage.reported:
            parts.append("cost unknown")
        elif stats.cost is not None:
            saved = f" (cache saved ${stats.cache_savings:.4f})" if stats.cache_savings else ""
            parts.append(f"${stats.cost:.4f}{saved}")
        parts.append(f"{self.wall_time_s:.2f} s")
        if self.stop_reason != "final":
            parts.append(f"stopped: {self.stop_reason}")
        return " · ".join(parts)

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        # The answer was already streamed; what is left to show is the one-line summary.
        return self.summary()
