"""Message content in the GenAI conventions' shape, and the scrubbing of secrets.

Only used when the user opts in to content capture
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). Structured values go out
as JSON text: span attributes cannot hold maps, and the conventions allow JSON strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic_core import to_json

REDACTED = "[redacted]"


class Redactor:
    """Replaces every configured secret (API keys, header values) found in a text."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: a key that contains another is replaced whole.
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def json_text(value: Any) -> str:
    """JSON text of a stored value, as the store writes it (anything else as its str())."""
    return to_json(value, fallback=str).decode()


def result_text(value: Any) -> str:
    """A tool's result: its text as is, anything else as JSON."""
    return value if isinstance(value, str) else json_text(value)


def input_messages(request: Any) -> list[dict[str, Any]]:
    """The messages a model call sent that the chat had not sent before (what its row keeps)."""
    if not isinstance(request, dict):
        return []
    return [_message(m) for m in request.get("new_messages") or [] if isinstance(m, dict)]


def system_instructions(request: Any) -> list[dict[str, Any]] | None:
    """The system prompt, when this call's row recorded it (it changed since the last call)."""
    if isinstance(request, dict) and isinstance(request.get("system"), str):
        return [{"type": "text", "content": request["system"]}]
    return None


def tool_definitions(request: Any) -> list[dict[str, Any]]:
    """The tools offered, flat as the conventions write them.

    Each is type, name, description, parameters; the request nests them under
    ``function``, as OpenAI's API does.
    """
    schemas = request.get("tool_schemas") if isinstance(request, dict) else None
    found: list[dict[str, Any]] = []
    for schema in schemas or []:
        if isinstance(schema, dict):
            function = schema.get("function") if isinstance(schema.get("function"), dict) else {}
            found.append({"type": schema.get("type", "function"), **(function or schema)})
    return found


def output_messages(output: Any) -> list[dict[str, Any]]:
    """The model's answer: its text, reasoning and tool calls, with why it stopped."""
    if not isinstance(output, dict):
        return []
    parts: list[dict[str, Any]] = []
    if output.get("reasoning"):
        parts.append({"type": "reasoning", "content": output["reasoning"]})
    if output.get("content"):
        parts.append({"type": "text", "content": output["content"]})
    for call in output.get("tool_calls") or []:
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": call.get("arguments"),
            }
        )
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if output.get("finish_reason"):
        message["finish_reason"] = output["finish_reason"]
    return [message]


def text_message(role: str, value: Any) -> list[dict[str, Any]]:
    """One message of one text part (a workflow agent's input or result)."""
    if value is None:
        return []
    return [{"role": role, "parts": [{"type": "text", "content": result_text(value)}]}]


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    if role == "tool":
        part = {
            "type": "tool_call_response",
            "id": message.get("tool_call_id"),
            "response": message.get("content"),
        }
        return {"role": "tool", "parts": [part]}
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        parts.extend(_part(item) for item in content if isinstance(item, dict))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": function.get("arguments"),
            }
        )
    return {"role": role, "parts": parts}


def _part(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "text":
        return {"type": "text", "content": item.get("text", "")}
    url = (item.get("image_url") or {}).get("url") if item.get("type") == "image_url" else None
    if isinstance(url, str) and not url.startswith("data:"):  # never image bytes
        return {"type": "uri", "modality": "image", "uri": url}
    return {"type": "image"}  # a stored attachment: its bytes never leave
