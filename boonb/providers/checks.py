"""Refuse, before sending, a request the model cannot take."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import CapabilityError
from .profiles import Profile

_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})


def check_request(
    profile: Profile,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Raise ``CapabilityError`` if ``messages``/``tools`` need what ``model`` lacks."""
    caps = profile.spec(model).capabilities
    if tools and not caps.tools:
        raise CapabilityError(
            f"model {model!r} (profile {profile.name!r}) does not support tool calls, "
            f"but {len(tools)} tool(s) were given. Use a model with tools, drop the tools, "
            "or, if the model does support them, override the profile: "
            f"profile.with_overrides(capabilities={{{model!r}: Capabilities(tools=True, ...)}})."
        )
    if not caps.vision:
        for position, message in enumerate(messages):
            if _has_image(message):
                raise CapabilityError(
                    f"model {model!r} (profile {profile.name!r}) cannot read images, but "
                    f"message {position} ({message.get('role', '?')}) has an image part. "
                    "Nothing was sent. Use a vision model, describe the image in text instead, "
                    "or, if the model does accept images, override the profile: "
                    f"profile.with_overrides(capabilities={{{model!r}: "
                    "Capabilities(vision=True, ...)})."
                )


def _has_image(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    if not isinstance(content, list):
        return False
    return any(isinstance(part, Mapping) and part.get("type") in _IMAGE_PART_TYPES
               for part in content)
