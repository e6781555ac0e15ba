"""Deciding what the simulated model says: a matching rule, else a deterministic default.

Default replies always start with ``[simulator]`` and never call tools, so an agent loop
driven by the simulator terminates: after tool results it gets a text summary of them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .messages import image_count, message_text
from .rules import Rule, RuleBook
from .tokens import count_tokens

Message = Mapping[str, Any]
QUOTE_CHARS = 80


@dataclass(frozen=True)
class ToolCall:
    """A tool call as the model emits it; ``arguments`` is JSON text, as on the wire."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """Everything the model produces for one request, before it is put on the wire."""

    content: str | None
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = field(default=())
    latency: float | None = None
    """Per-rule latency override in seconds; ``None`` means the server's latency."""

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning or "")

    @property
    def completion_tokens(self) -> int:
        """Content + reasoning + tool call names and arguments (reasoning is inside)."""
        tool_tokens = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in self.tool_calls)
        return count_tokens(self.content or "") + self.reasoning_tokens + tool_tokens


def shorten(text: str, limit: int = QUOTE_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters with an ellipsis."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _tool_call_id(messages: Sequence[Message], index: int, name: str, arguments: str) -> str:
    # The conversation length and last text make ids unique within one conversation even when
    # the same rule fires twice, while staying reproducible run to run.
    seed = f"{len(messages)}|{message_text(messages[-1])}|{index}|{name}|{arguments}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def _tool_names_by_id(messages: Sequence[Message]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = str(function.get("name", "tool"))
    return names


def _trailing_tool_messages(messages: Sequence[Message]) -> list[Message]:
    trailing: list[Message] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    return trailing[::-1]


def default_reply(messages: Sequence[Message]) -> str:
    """Return the deterministic answer used when no rule matches."""
    last = messages[-1]
    if last.get("role") == "tool":
        names = _tool_names_by_id(messages)
        summaries = [
            f"{names.get(str(m.get('tool_call_id', '')), 'tool')} → "
            f"{shorten(message_text(m)) or '(empty)'}"
            for m in _trailing_tool_messages(messages)
        ]
        return "[simulator] Tool results: " + "; ".join(summaries)
    text = shorten(message_text(last))
    images = image_count(last)
    image_note = f"{images} image{'s' if images != 1 else ''}"
    if text and images:
        return f'[simulator] This is a simulated reply to: "{text}" (with {image_note}).'
    if images:
        return f"[simulator] This is a simulated reply to {image_note}."
    return f'[simulator] This is a simulated reply to: "{text}".'


def default_reasoning(messages: Sequence[Message], tool_calls: Sequence[ToolCall]) -> str:
    """Deterministic thinking for reasoner models, mentioning what comes next."""
    last = messages[-1]
    subject = shorten(message_text(last), 60) or "the request"
    plan = (
        "I will call " + ", ".join(call.name for call in tool_calls) + "."
        if tool_calls
        else "I will answer directly."
    )
    return (
        f"[simulator] Thinking about the last {last.get('role', 'user')} message: "
        f'"{subject}". Messages so far: {len(messages)}. {plan}'
    )


def plan_reply(messages: Sequence[Message], *, model: str, rules: RuleBook) -> Reply:
    """Pick the reply for a request: the first matching rule, else the default."""
    rule: Rule | None = rules.take(messages[-1])
    tool_calls: tuple[ToolCall, ...] = ()
    if rule is not None and rule.tool_calls:
        calls = []
        for index, spec in enumerate(rule.tool_calls):
            arguments = json.dumps(spec["arguments"], ensure_ascii=False)
            call_id = _tool_call_id(messages, index, spec["name"], arguments)
            calls.append(ToolCall(id=call_id, name=spec["name"], arguments=arguments))
        tool_calls = tuple(calls)

    if rule is not None and rule.reply is not None:
        content: str | None = rule.reply
    elif tool_calls:
        content = None  # like real models: a pure tool-call turn has null content
    else:
        content = default_reply(messages)

    if rule is not None and rule.reasoning is not None:
        reasoning: str | None = rule.reasoning
    elif "reasoner" in model.lower():
        reasoning = default_reasoning(messages, tool_calls)
    else:
        reasoning = None

    latency = rule.latency if rule is not None else None
    return Reply(content=content, reasoning=reasoning, tool_calls=tool_calls, latency=latency)
