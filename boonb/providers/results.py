"""What a chat call returns: the assembled result and the events streamed on the way."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ToolArgumentsError
from .usage import Usage


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: str
    """The raw JSON text exactly as the model sent it (send it back unchanged in history)."""

    def parsed_arguments(self) -> dict[str, Any]:
        """Decode the arguments; raise ``ToolArgumentsError`` unless they are a JSON object."""
        text = self.arguments.strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(
                f"tool call {self.id!r} to {self.name!r} has arguments that are not valid JSON "
                f"({exc.msg} at position {exc.pos}): {self.arguments[:200]!r}. "
                "Return this error to the model as the tool result so it can retry."
            ) from None
        if not isinstance(value, dict):
            raise ToolArgumentsError(
                f"tool call {self.id!r} to {self.name!r} has arguments that are a JSON "
                f"{type(value).__name__}, not an object: {self.arguments[:200]!r}"
            )
        return value


@dataclass(slots=True)
class ChatResult:
    """One finished model call, with its usage mapped onto boonb's token convention."""

    content: str
    reasoning: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    """The model that answered, as the server named it (may be a dated snapshot name)."""
    request_id: str | None = None
    """The response's ``id``."""
    latency_ms: float = 0.0
    """From the first request to the last byte of the answer, retries and waits included."""
    cost: float | None = None
    """USD, from the profile's prices for the requested model; ``None`` when unknown
    (no prices, or the provider reported no usage: see ``Usage.reported``)."""
    cache_savings: float | None = None
    """USD the prompt-cache hits saved; ``None`` when cost is unknown."""
    retries: int = 0
    """How many failed attempts (429, 5xx, timeouts, connection errors) preceded this one."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, as streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (reasoning models only), as streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model began a tool call; its arguments follow in later chunks."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Completed:
    """The last event of a stream: the whole assembled result."""

    result: ChatResult


StreamEvent = TextDelta | ReasoningDelta | ToolCallStarted | Completed
