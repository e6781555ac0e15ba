"""Scripted behaviour: rules from prompt patterns to replies or tool calls.

A rule is matched against the text of the *last* message of a request, and only when that
message's role fits the rule's ``role``. ``role="tool"`` rules let a script chain tools: the
result of one tool call can trigger the next. The first matching rule wins.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass

from .messages import message_text

RuleRole = Literal["user", "tool", "any"]


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.S | re.I)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Rule:
    """What the simulated model does when the last message matches ``pattern``.

    ``pattern`` is a regular expression searched (case-insensitive, dot matches newline) in
    the last message's text. ``tool_calls`` items are ``{"name": str, "arguments": dict}``;
    the server gives each a deterministic ``call_<hash>`` id. A rule with neither ``reply``
    nor ``tool_calls`` gets the default turn, as if no rule matched (useful to add
    ``reasoning`` or ``latency`` only). ``times`` limits how often the rule fires
    (``None`` = always); ``latency`` overrides the server's latency for requests this
    rule answers.
    """

    pattern: str
    _: KW_ONLY
    reply: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None
    role: RuleRole = "user"
    times: int | None = None
    latency: float | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str) -> str:
        try:
            _compiled(pattern)
        except re.error as exc:
            message = f"pattern {pattern!r} is not a valid regular expression: {exc}"
            raise ValueError(message) from exc
        return pattern

    @field_validator("tool_calls")
    @classmethod
    def _tool_calls_have_name_and_arguments(
        cls, calls: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        if calls is None:
            return None
        checked = []
        for call in calls:
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise ValueError(f"each tool call needs a non-empty 'name': {call!r}")
            arguments = call.get("arguments", {})
            if not isinstance(arguments, dict):
                raise ValueError(f"tool call 'arguments' must be an object: {call!r}")
            extra = set(call) - {"name", "arguments"}
            if extra:
                raise ValueError(f"unknown tool call keys {sorted(extra)}; use name, arguments")
            checked.append({"name": call["name"], "arguments": arguments})
        return checked

    @field_validator("times")
    @classmethod
    def _times_positive(cls, times: int | None) -> int | None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for unlimited)")
        return times

    def matches(self, message: Mapping[str, Any]) -> bool:
        """Whether this rule applies to ``message`` (ignoring how often it has fired)."""
        if self.role != "any" and message.get("role") != self.role:
            return False
        return _compiled(self.pattern).search(message_text(message)) is not None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Build a rule from a JSON-style dict, with pydantic's validation messages."""
        return _RULE.validate_python(dict(data))


_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
_RULES: TypeAdapter[list[Rule]] = TypeAdapter(list[Rule])


def load_rules(path: str | Path) -> list[Rule]:
    """Read a JSON file holding a list of rule objects (keys as in :class:`Rule`)."""
    return _RULES.validate_json(Path(path).read_bytes())


class RuleBook:
    """The server's ordered rules and how many uses each has left; thread-safe."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: list[list[Any]] = []  # [rule, uses left or None]
        for rule in rules:
            self.add(rule)

    def add(self, rule: Rule) -> None:
        with self._lock:
            self._entries.append([rule, rule.times])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @property
    def rules(self) -> list[Rule]:
        """Rules that can still fire, in matching order."""
        with self._lock:
            return [rule for rule, left in self._entries if left is None or left > 0]

    def take(self, message: Mapping[str, Any]) -> Rule | None:
        """Return the first rule matching ``message`` and use up one of its ``times``."""
        with self._lock:
            for entry in self._entries:
                rule, left = entry
                if left is not None and left <= 0:
                    continue
                if rule.matches(message):
                    if left is not None:
                        entry[1] = left - 1
                    return rule
        return None
