"""Token usage of one model call, mapped onto boonb's single token convention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A usage object counts as reported when at least one of these is a number.
_COUNTERS = ("prompt_tokens", "completion_tokens", "total_tokens",
             "prompt_cache_hit_tokens", "prompt_cache_miss_tokens")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens used by one model call (or a sum of calls).

    The one convention used everywhere in boonb: ``input_tokens`` includes the
    cache-read tokens, ``cache_tokens`` are those cache-read (hit) tokens,
    ``reasoning_tokens`` are part of ``output_tokens``, and
    ``tokens_used = input_tokens + output_tokens``.
    """

    input_tokens: int = 0
    """All prompt tokens sent, cache hits included (the API's ``prompt_tokens``)."""

    output_tokens: int = 0
    """All generated tokens, reasoning included (the API's ``completion_tokens``, plus any
    hidden reasoning that only the API's ``total_tokens`` counts)."""

    cache_tokens: int = 0
    """Prompt tokens served from the provider's prefix cache (a subset of ``input_tokens``)."""

    reasoning_tokens: int = 0
    """Chain-of-thought tokens (a subset of ``output_tokens``), hidden ones included."""

    reported: bool = field(default=True, kw_only=True)
    """``False`` when the provider sent no usage for the call (for a sum: for at least one
    of its calls). The counters then undercount, and cost must be shown as unknown."""

    @property
    def cache_miss_tokens(self) -> int:
        """Prompt tokens that were not served from the cache: ``input_tokens - cache_tokens``."""
        return self.input_tokens - self.cache_tokens

    @property
    def tokens_used(self) -> int:
        """Everything the call consumed: ``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_tokens=self.cache_tokens + other.cache_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            reported=self.reported and other.reported,
        )

    @classmethod
    def from_api(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Map a chat-completions ``usage`` object (DeepSeek or OpenAI style) onto the convention.

        DeepSeek reports ``prompt_cache_hit_tokens`` and ``prompt_cache_miss_tokens``
        (hit + miss = prompt); OpenAI reports ``prompt_tokens_details.cached_tokens``.
        Reasoning comes from ``completion_tokens_details.reasoning_tokens``. Missing or
        null fields count as zero; no usage at all gives ``reported=False``.

        Some providers leave hidden reasoning out of ``completion_tokens`` but count it in
        ``total_tokens`` (Gemini's OpenAI-compatible endpoint). The gap
        ``total - prompt - completion`` is then added to the output and counted as
        reasoning. A gateway may also report those hidden tokens as ``reasoning_tokens``
        (equal to the gap), so reasoning is the larger of the two, never their sum.
        """
        if not usage or not any(_is_count(usage.get(name)) for name in _COUNTERS):
            return cls(reported=False)
        hit = usage.get("prompt_cache_hit_tokens")
        miss = _int(usage.get("prompt_cache_miss_tokens"))
        prompt = _int(usage.get("prompt_tokens")) or _int(hit) + miss
        prompt_details = usage.get("prompt_tokens_details") or {}
        # DeepSeek's own field wins: it also sends an OpenAI-style details object.
        cached = _int(hit) if hit is not None else _int(prompt_details.get("cached_tokens"))
        completion_details = usage.get("completion_tokens_details") or {}
        completion = _int(usage.get("completion_tokens"))
        reasoning = _int(completion_details.get("reasoning_tokens"))
        hidden = max(_int(usage.get("total_tokens")) - prompt - completion, 0)
        return cls(
            input_tokens=prompt,
            output_tokens=completion + hidden,
            cache_tokens=min(cached, prompt),
            reasoning_tokens=max(reasoning, hidden) if hidden else reasoning,
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _is_count(value) else 0
