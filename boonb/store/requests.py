"""A model call's request as it was sent, rebuilt from what the store holds.

A model call's trace records only what was new in its prompt (``new_messages``), its
``message_count``, and, when they changed since the agent's previous call, the system
prompt and tool schemas. The whole request is the chat's stored messages up to that
count, behind the system prompt, with the tool schemas: what a user needs to see when a
prompt went wrong. This module rebuilds it from rows; the SQL is in :mod:`.traces`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import BaseModel, JsonValue


class SentRequest(BaseModel):
    """What a model call sent: model, messages (system prompt first) and tool schemas."""

    model: str | None
    messages: list[JsonValue]
    tools: list[JsonValue] | None
    """The tool schemas offered; None when the call offered none or they were not recorded."""
    notes: list[str]
    """Where the rebuilt request may differ from what was sent, and why."""


@dataclass(slots=True)
class StoredPart:
    """One ``message_parts`` row."""

    type: str
    text: str | None
    url: str | None
    mime: str | None
    size_bytes: int | None
    data: Any
    sha256: str | None = None
    """An image's content hash: with mime, size and ``data`` (width, height, name), its
    attachment reference; the bytes are under ``.boonb/attachments/``."""


@dataclass(slots=True)
class StoredMessage:
    """One ``messages`` row with its parts, in order."""

    id: UUID
    role: str
    parts: list[StoredPart] = field(default_factory=list)


def sent_request(
    call: dict[str, Any], context: dict[str, Any] | None, stored: list[StoredMessage]
) -> SentRequest:
    """The request of the model call whose trace input is ``call``.

    ``context`` is the trace input (this call's or an earlier one's) that recorded the
    system prompt and tool schemas; ``stored`` the chat's first messages, as many as the
    call sent after its system prompt.
    """
    notes: list[str] = []
    messages: list[JsonValue] = []
    tools: list[JsonValue] | None = None
    if context is None:
        names = call.get("tools") or []
        offered = ", ".join(str(n) for n in names) if isinstance(names, list) and names else "none"
        notes.append(
            "The system prompt and tool schemas of this call were not recorded (it was made "
            f"by an older boonb). Tools offered: {offered}."
        )
    else:
        system = context.get("system")
        if isinstance(system, str):
            messages.append({"role": "system", "content": system})
        schemas = context.get("tool_schemas")
        tools = list(schemas) if isinstance(schemas, list) else None
    count = call.get("message_count")
    withdrawn = _withdrawn(call)
    if withdrawn and isinstance(count, int):
        # The server refused this call and its newest messages were never stored: the
        # stored ones before them, then those messages as the trace recorded them.
        stored = stored[: max(0, count - 1 - len(withdrawn))]
        notes.append(
            f"The server refused this request; its last {len(withdrawn)} message(s) were "
            "taken out of the chat and are shown from the call's recorded input."
        )
    messages += [_message(m) for m in stored]
    messages += [_recorded(m) for m in withdrawn]
    if isinstance(count, int) and len(stored) + len(withdrawn) < count - 1:
        notes.append(
            f"Only {len(stored)} of the {count - 1} messages this call sent after the system "
            "prompt are stored (the rest were never written, e.g. after a cancel or a crash)."
        )
    model = call.get("model")
    return SentRequest(
        model=model if isinstance(model, str) else None,
        messages=messages,
        tools=tools,
        notes=notes,
    )


def _withdrawn(call: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a refused call that the chat does not keep (``withdrawn``)."""
    withdrawn, recorded = call.get("withdrawn"), call.get("new_messages")
    if not isinstance(withdrawn, int) or withdrawn < 1 or not isinstance(recorded, list):
        return []
    return [m for m in recorded[-withdrawn:] if isinstance(m, dict)]


def _recorded(message: dict[str, Any]) -> dict[str, Any]:
    """A message from a trace's input, its images shown by reference as stored ones are."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    shown = []
    for part in content:
        is_image = isinstance(part, dict) and part.get("type") == "image"
        image = part.get("image") if is_image else None
        if isinstance(image, dict):
            url = {"url": f"attachment:{image.get('sha256')}"}
            part = {"type": "image_url", "image_url": url, "attachment": image}
        shown.append(part)
    return {**message, "content": shown}


def _message(message: StoredMessage) -> dict[str, Any]:
    """A stored message back in the chat-completions shape it was sent in."""
    if message.role == "tool":
        result = next((p for p in message.parts if p.type == "tool_result"), None)
        data = result.data if result is not None and isinstance(result.data, dict) else {}
        return {
            "role": "tool",
            "tool_call_id": data.get("tool_call_id"),
            "content": result.text if result is not None else "",
        }
    content: list[dict[str, Any]] = []
    calls: list[Any] = []
    for part in message.parts:
        if part.type == "tool_call":
            calls.append(part.data)
        elif part.type == "image":
            content.append(_image_part(part))
        else:
            content.append({"type": "text", "text": part.text or ""})
    shown: Any
    if any(part["type"] == "image_url" for part in content) or len(content) > 1:
        shown = content
    elif content:
        shown = content[0]["text"]
    else:
        # An assistant message with only tool calls was sent with content null.
        shown = None if calls else ""
    rebuilt: dict[str, Any] = {"role": message.role, "content": shown}
    if calls:
        rebuilt["tool_calls"] = calls
    return rebuilt


def _image_part(part: StoredPart) -> dict[str, Any]:
    """An image as sent, with its stored reference (``attachment``) instead of its bytes.

    The data URI it was sent as is never stored; a view shows the image by the reference.
    """
    shown: dict[str, Any] = {"type": "image_url", "image_url": {"url": _image_url(part)}}
    if part.sha256 is not None:
        data = part.data if isinstance(part.data, dict) else {}
        shown["attachment"] = {
            "sha256": part.sha256,
            "mime": part.mime,
            "size_bytes": part.size_bytes,
            "width": data.get("width"),
            "height": data.get("height"),
            "name": data.get("name", ""),
        }
    return shown


def _image_url(part: StoredPart) -> str:
    if part.url:
        return part.url
    # Image bytes are not kept in message rows (the attachment store owns them).
    size = f", {part.size_bytes} bytes" if part.size_bytes else ""
    return f"data:{part.mime or 'image'};base64,<image not stored with the message{size}>"
