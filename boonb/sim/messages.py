"""Reading chat messages the way the simulator needs them.

Requests arrive as loose JSON, so every helper here tolerates missing keys and odd shapes
instead of raising: validation of what *must* be present happens in the endpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

Message = Mapping[str, Any]
QUOTE_CHARS = 80


def content_parts(message: Message) -> list[Mapping[str, Any]]:
    """Return the content as a list of parts; a plain string becomes one text part."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, Mapping)]
    return []


def message_text(message: Message) -> str:
    """Join the text parts of a message (images and other parts are left out)."""
    texts = [
        str(part.get("text", ""))
        for part in content_parts(message)
        if part.get("type", "text") == "text"
    ]
    return "\n".join(texts)


def shorten(text: str, limit: int = QUOTE_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters with an ellipsis."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def image_count(message: Message) -> int:
    """Count ``image_url`` parts, which a text-only model must refuse."""
    return sum(1 for part in content_parts(message) if part.get("type") == "image_url")


def _image_url(part: Mapping[str, Any]) -> str:
    image = part.get("image_url")
    if isinstance(image, Mapping):
        return str(image.get("url", ""))
    return str(image or "")


def canonical_message(message: Message) -> str:
    """Serialise a message for token counting and prefix hashing.

    Image URLs (often megabyte-sized data URIs) are replaced by a short content hash so an
    image costs a handful of tokens and identical images still share a cache prefix.
    """
    lines = [f"{message.get('role', '')}:"]
    if message.get("name"):
        lines.append(f"name={message['name']}")
    for part in content_parts(message):
        kind = part.get("type", "text")
        if kind == "text":
            lines.append(str(part.get("text", "")))
        elif kind == "image_url":
            digest = hashlib.sha256(_image_url(part).encode()).hexdigest()[:16]
            lines.append(f"[image {digest}]")
        else:
            lines.append(json.dumps(part, sort_keys=True, ensure_ascii=False))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        lines.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    if message.get("tool_call_id"):
        lines.append(f"[{message['tool_call_id']}]")
    return "\n".join(lines)
