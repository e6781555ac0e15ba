"""Build a ``ChatResult`` from stream chunks or from a whole ``chat.completion`` body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ResponseFormatError, StreamError
from .results import (
    ChatResult,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallStarted,
)
from .usage import Usage


@dataclass(slots=True)
class _PartialToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    announced: bool = False


class StreamAssembler:
    """Accumulates ``chat.completion.chunk`` objects; only choice 0 is read (``n=1``)."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.request_id: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, _PartialToolCall] = {}

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """Take one parsed chunk; return the events it produces (in order)."""
        _raise_embedded_error(chunk, stream=True)
        self.request_id = chunk.get("id") or self.request_id
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = Usage.from_api(chunk["usage"])
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self._reasoning.append(reasoning)
                events.append(ReasoningDelta(reasoning))
            if delta.get("content"):
                self._content.append(delta["content"])
                events.append(TextDelta(delta["content"]))
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                events.extend(self._feed_tool_fragment(position, fragment))
        return events

    def _feed_tool_fragment(self, position: int, fragment: Mapping[str, Any]) -> list[StreamEvent]:
        index = fragment.get("index")
        if not isinstance(index, int):
            # Some local servers omit the index and send each call whole.
            index = len(self._tools) if fragment.get("id") else max(self._tools, default=position)
        call = self._tools.setdefault(index, _PartialToolCall())
        function = fragment.get("function") or {}
        call.id = call.id or fragment.get("id") or ""
        call.name = call.name or function.get("name") or ""
        if function.get("arguments"):
            call.arguments.append(function["arguments"])
        if call.name and not call.announced:
            call.announced = True
            return [ToolCallStarted(index, call.id or _fallback_id(index), call.name)]
        return []

    def result(self) -> ChatResult:
        """Return the assembled result (the client fills in latency and cost)."""
        return ChatResult(
            content="".join(self._content),
            reasoning="".join(self._reasoning) if self._reasoning else None,
            tool_calls=[
                ToolCall(id=c.id or _fallback_id(i), name=c.name, arguments="".join(c.arguments))
                for i, c in sorted(self._tools.items())
            ],
            finish_reason=self.finish_reason,
            usage=self.usage or Usage(reported=False),
            model=self.model,
            request_id=self.request_id,
        )


def parse_completion(body: Any, *, model: str) -> ChatResult:
    """Read a non-streamed ``chat.completion`` body."""
    if not isinstance(body, Mapping):
        raise ResponseFormatError(
            f"expected a JSON object from /chat/completions, got {type(body).__name__}; "
            "is base_url pointing at an OpenAI-compatible server?"
        )
    _raise_embedded_error(body, stream=False)
    choices = body.get("choices") or []
    if not choices:
        raise ResponseFormatError("the chat.completion body has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    calls = [
        ToolCall(
            id=call.get("id") or _fallback_id(i),
            name=(call.get("function") or {}).get("name") or "",
            arguments=(call.get("function") or {}).get("arguments") or "",
        )
        for i, call in enumerate(message.get("tool_calls") or [])
    ]
    return ChatResult(
        content=message.get("content") or "",
        reasoning=reasoning or None,
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        usage=Usage.from_api(body.get("usage")),
        model=body.get("model") or model,
        request_id=body.get("id"),
    )


def _raise_embedded_error(obj: Mapping[str, Any], *, stream: bool) -> None:
    # Servers report failures after a 200 as {"error": {...}} in the body or a data: line.
    error = obj.get("error")
    if not error:
        return
    message = error.get("message") if isinstance(error, Mapping) else str(error)
    cls = StreamError if stream else ResponseFormatError
    raise cls(f"the server reported an error inside the response: {message}")


def _fallback_id(index: int) -> str:
    return f"call_{index}"
