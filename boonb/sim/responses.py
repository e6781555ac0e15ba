"""Building OpenAI wire objects: completions, stream chunks, usage, errors, model lists.

Pure functions from a :class:`~boonb.sim.replies.Reply` to JSON-ready dicts, so the shape of
the protocol lives in one place and the HTTP layer only writes bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .replies import Reply

UsageStyle = Literal["deepseek", "openai"]
CREATED = 1_700_000_000
"""Fixed ``created`` timestamp: responses are deterministic, and say so."""
MODEL_IDS = ("sim-chat", "sim-reasoner", "deepseek-chat", "deepseek-reasoner", "gpt-4o-mini")
SYSTEM_FINGERPRINT = "boonb-simulator"
ARGUMENT_FRAGMENTS = 3


@dataclass(frozen=True)
class Usage:
    """Token figures for one call.

    ``prompt_tokens`` includes the cache hits; ``cache_hit_tokens`` are the block-aligned
    prefix tokens seen before (miss = prompt - hit); ``reasoning_tokens`` are inside
    ``completion_tokens``.
    """

    prompt_tokens: int
    cache_hit_tokens: int
    completion_tokens: int
    reasoning_tokens: int

    def to_wire(self, style: UsageStyle) -> dict[str, Any]:
        """Spell the ``usage`` object the way DeepSeek or OpenAI do."""
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if style == "deepseek":
            usage["prompt_cache_hit_tokens"] = self.cache_hit_tokens
            usage["prompt_cache_miss_tokens"] = self.prompt_tokens - self.cache_hit_tokens
            if self.reasoning_tokens:
                usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        else:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cache_hit_tokens}
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


def sim_model_name(requested: str | None) -> str:
    """Echo the requested model, prefixed with ``sim:`` unless it already says "sim"."""
    name = requested or "sim-chat"
    return name if "sim" in name.lower() else f"sim:{name}"


def completion_object(
    *, completion_id: str, model: str, reply: Reply, usage: Usage, style: UsageStyle
) -> dict[str, Any]:
    """Build the ``chat.completion`` object of a non-streaming response."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage.to_wire(style),
    }


def split_words(text: str) -> list[str]:
    """Cut text into word-sized deltas (each keeps its trailing whitespace)."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def split_even(text: str, parts: int) -> list[str]:
    """Cut text into at most ``parts`` non-empty pieces, as argument fragments arrive."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_chunks(
    *,
    completion_id: str,
    model: str,
    reply: Reply,
    usage: Usage,
    style: UsageStyle,
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """Yield the ``chat.completion.chunk`` objects of a stream in order (no ``[DONE]``).

    Order: role, reasoning deltas, content deltas, tool calls (header then argument
    fragments, one index per call), the finish chunk, then the usage chunk if asked for.
    """
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    usage_field = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **usage_field}

    yield chunk({"role": "assistant", "content": ""})
    for piece in split_words(reply.reasoning or ""):
        yield chunk({"reasoning_content": piece})
    for piece in split_words(reply.content or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        header = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield chunk({"tool_calls": [header]})
        for fragment in split_even(call.arguments, ARGUMENT_FRAGMENTS):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": usage.to_wire(style)}


def error_body(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """Build an OpenAI-style error object."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def models_list() -> dict[str, Any]:
    """Build the ``GET /v1/models`` answer."""
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": CREATED, "owned_by": "boonb-simulator"}
            for model_id in MODEL_IDS
        ],
    }
