"""History messages: the one a model's answer becomes, and the row and frame each is recorded as."""

from __future__ import annotations

import json
from typing import Any

from boonb.agent.images import jsonable
from boonb.agent.recorder import Recorder
from boonb.frames import MessageComplete
from boonb.providers import ChatResult


def assistant_message(result: ChatResult) -> dict[str, Any]:
    # With tool calls and no text, the API wants content null; a final answer keeps its text.
    content = result.content or (None if result.tool_calls else "")
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in result.tool_calls
        ]
    return message


def record_message(recorder: Recorder, message: dict[str, Any], *, turn_number: int) -> None:
    """Record ``message`` of ``recorder``'s chat: its row, and its ``message:complete`` frame."""
    recorder.message(message, turn_number=turn_number)
    content = message.get("content")
    recorder.publish(
        MessageComplete(
            chat_id=recorder.chat_id,
            turn_number=turn_number,
            role=message["role"],
            content=content if isinstance(content, str) else dumps(jsonable(content)),
            tool_calls=message.get("tool_calls") or [],
        )
    )


def dumps(value: Any) -> str:
    """``value`` as the JSON text a message carries (non-ASCII kept, anything else as ``str``)."""
    return json.dumps(value, ensure_ascii=False, default=str)
