"""Deciding what the simulated model says: a matching rule, else a deterministic default.

The default, when a request offers boonb's file tools, is the planner's minimal agent
(:mod:`boonb.sim.planner`: search, read, answer from what it read); otherwise a text reply.
Default replies always start with ``[simulator]``, and the planner stops after a few tool
turns, so an agent loop driven by the simulator terminates: after tool results a rule did
not follow up on, it gets a text summary of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import planner
from .messages import image_count, message_text, shorten
from .recap import recap
from .rules import Rule, RuleBook
from .tokens import count_tokens

Message = Mapping[str, Any]


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


def _tool_call_id(
    messages: Sequence[Message], index: int, name: str, arguments: str, *, prefix: str = "call_"
) -> str:
    # The conversation length and last text make ids unique within one conversation even when
    # the same rule fires twice, while staying reproducible run to run.
    seed = f"{len(messages)}|{message_text(messages[-1])}|{index}|{name}|{arguments}"
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


def _calls(
    messages: Sequence[Message], specs: Sequence[tuple[str, Mapping[str, Any]]], *, prefix: str
) -> tuple[ToolCall, ...]:
    calls = []
    for index, (name, spec_arguments) in enumerate(specs):
        arguments = json.dumps(spec_arguments, ensure_ascii=False)
        call_id = _tool_call_id(messages, index, name, arguments, prefix=prefix)
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return tuple(calls)


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


def default_turn(messages: Sequence[Message], tools: Sequence[Any] | None) -> Reply:
    """What the model does when no rule decides: the planner's next step, else a reply."""
    planned = planner.next_calls(messages, tools)
    if planned:
        specs = [(call.name, call.arguments) for call in planned]
        # Null content, like real models on a pure tool-call turn.
        return Reply(
            content=None, tool_calls=_calls(messages, specs, prefix=planner.PLAN_ID_PREFIX)
        )
    episode = planner.read_episode(messages)
    if episode is not None and episode.ours and episode.turns:
        return Reply(content=recap(episode))
    return Reply(content=default_reply(messages))


def plan_reply(
    messages: Sequence[Message],
    *,
    model: str,
    rules: RuleBook,
    tools: Sequence[Any] | None = None,
) -> Reply:
    """Pick the reply for a request: the first matching rule, else the default turn.

    ``tools`` is the request's ``tools`` list (``None`` or empty when none are offered).
    A rule with neither ``reply`` nor ``tool_calls`` gets the default turn too.
    """
    rule: Rule | None = rules.take(messages[-1])
    tool_calls: tuple[ToolCall, ...] = ()
    if rule is not None and rule.tool_calls:
        specs = [(spec["name"], spec["arguments"]) for spec in rule.tool_calls]
        tool_calls = _calls(messages, specs, prefix="call_")

    if rule is not None and rule.reply is not None:
        content: str | None = rule.reply
    elif tool_calls:
        content = None  # like real models: a pure tool-call turn has null content
    else:
        default = default_turn(messages, tools)
        content, tool_calls = default.content, default.tool_calls

    if rule is not None and rule.reasoning is not None:
        reasoning: str | None = rule.reasoning
    elif "reasoner" in model.lower():
        reasoning = default_reasoning(messages, tool_calls)
    else:
        reasoning = None

    latency = rule.latency if rule is not None else None
    return Reply(content=content, reasoning=reasoning, tool_calls=tool_calls, latency=latency)
