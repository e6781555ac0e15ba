"""Prompt-cache telemetry: split each prompt into segments and say where the hits fell.

A provider reports one number of cache-hit tokens per call. To show *why* a call
missed, the prompt is split into segments in the order a prefix cache sees them
(system prompt, tool schemas, conversation history, image attachments), each
measured by its estimated token length and scaled so the segments add up to the
provider's own ``input_tokens``. Hits fill the segments from the start.

Each segment also carries a hash of its content and a hash of the part of it the
previous call already sent; when those differ from the previous call's hash, that
segment changed and broke the cached prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from boonb.frames import CacheSegment, Segment

SEGMENTS: tuple[Segment, ...] = ("system", "tools", "history", "attachments")

# An image's share of the prompt is not in its URL's length; count a fixed amount
# (OpenAI bills a low-detail image at 85 tokens).
IMAGE_TOKENS = 85

_TOKEN = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate (words and punctuation)."""
    return len(_TOKEN.findall(text))


def content_hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class PromptSegments:
    """The prompt of one call, split into segments."""

    system: list[Any] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)

    @classmethod
    def split(
        cls, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None
    ) -> PromptSegments:
        parts = cls(tools=list(tools or []))
        for message in messages:
            if message.get("role") == "system":
                parts.system.append(message.get("content"))
                continue
            content = message.get("content")
            if isinstance(content, list):
                kept = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        url = part.get("image_url", {}).get("url", "")
                        parts.attachments.append(hashlib.sha256(url.encode()).hexdigest()[:16])
                        kept.append({"type": "image_url", "ref": parts.attachments[-1]})
                    else:
                        kept.append(part)
                message = {**message, "content": kept}
            parts.history.append(message)
        return parts

    def estimates(self) -> dict[Segment, int]:
        return {
            "system": sum(estimate_tokens(_text(m)) for m in self.system),
            "tools": estimate_tokens(_text(self.tools)) if self.tools else 0,
            "history": sum(estimate_tokens(_text(m)) for m in self.history),
            "attachments": IMAGE_TOKENS * len(self.attachments),
        }

    def hashes(self) -> dict[Segment, str]:
        return {
            "system": content_hash(self.system),
            "tools": content_hash(self.tools),
            "history": content_hash(self.history),
            "attachments": content_hash(self.attachments),
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class CacheTracker:
    """Per chat: turns each call's usage into segment rows, remembering the previous call."""

    def __init__(self) -> None:
        self._previous: PromptSegments | None = None

    def segments(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        *,
        input_tokens: int,
        cache_tokens: int,
    ) -> list[CacheSegment]:
        prompt = PromptSegments.split(messages, tools)
        sizes = _scale(prompt.estimates(), input_tokens)
        hashes = prompt.hashes()
        prefix = self._prefix_hashes(prompt, hashes)
        self._previous = prompt
        rows = []
        left = cache_tokens
        for name in SEGMENTS:
            hit = min(left, sizes[name])
            left -= hit
            rows.append(
                CacheSegment(
                    segment=name,
                    tokens=sizes[name],
                    hit_tokens=hit,
                    miss_tokens=sizes[name] - hit,
                    hash=hashes[name],
                    prefix_hash=prefix[name],
                )
            )
        return rows

    def _prefix_hashes(
        self, prompt: PromptSegments, hashes: dict[Segment, str]
    ) -> dict[Segment, str | None]:
        previous = self._previous
        if previous is None:
            return dict.fromkeys(SEGMENTS, None)
        # History and attachments grow; what matters is whether what was sent before
        # is still sent unchanged at the start. System and tools are compared whole.
        return {
            "system": hashes["system"],
            "tools": hashes["tools"],
            "history": content_hash(prompt.history[: len(previous.history)]),
            "attachments": content_hash(prompt.attachments[: len(previous.attachments)]),
        }


def _scale(estimates: dict[Segment, int], total: int) -> dict[Segment, int]:
    """Scale estimates to add up to the provider's ``total`` (largest remainders get the rest)."""
    estimated = sum(estimates.values())
    if estimated == 0:
        return {name: total if name == "history" else 0 for name in SEGMENTS}
    exact = {name: estimates[name] * total / estimated for name in SEGMENTS}
    sizes = {name: int(exact[name]) for name in SEGMENTS}
    short = total - sum(sizes.values())
    for name in sorted(SEGMENTS, key=lambda n: exact[n] - sizes[n], reverse=True)[:short]:
        sizes[name] += 1
    return sizes
