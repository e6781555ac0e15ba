"""Image parts as the simulator checks them: what a vision model or a text-only one says.

With vision on, each ``image_url`` part must be a base64 data URI (or an http(s) URL, which
the simulator does not fetch) of a PNG, JPEG, GIF or WebP, recognised by its bytes, not its
declared type. With vision off the request is refused the way DeepSeek's text-only models
refuse it: HTTP 400, ``invalid_request_error``, "Failed to deserialize the JSON body into
the target type: messages[i]: unknown variant `image_url`, expected `text` at line 1 column
n" (the shape their API returns, as quoted in many client bug reports).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from .messages import content_parts

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def detected_mime(data: bytes) -> str | None:
    """The supported image type of ``data`` by its magic bytes, or None."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_urls(message: Mapping[str, Any]) -> list[str]:
    urls = []
    for part in content_parts(message):
        if part.get("type") == "image_url":
            image = part.get("image_url")
            urls.append(str(image.get("url", "")) if isinstance(image, Mapping) else str(image))
    return urls


def text_only_refusal(raw: bytes, index: int) -> str:
    """DeepSeek's message for an image part sent to a text-only model."""
    column = raw.find(b'"image_url"') + 1 or 1
    return (
        f"Failed to deserialize the JSON body into the target type: messages[{index}]: "
        f"unknown variant `image_url`, expected `text` at line 1 column {column} "
        "(boonb simulator: vision is off, so images are refused like a text-only model does)"
    )


def invalid_image(messages: Sequence[Any]) -> str | None:
    """Why an image part of ``messages`` is not a valid image, or None if all are."""
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        for url in image_urls(message):
            problem = _problem(url)
            if problem is not None:
                return f"messages[{index}]: invalid image_url: {problem}"
    return None


def _problem(url: str) -> str | None:
    if url.startswith(("http://", "https://")):
        return None
    if not url.startswith("data:"):
        return f"expected a data URI or an http(s) URL, got {url[:40]!r}"
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        return "the data URI must be base64 (data:image/png;base64,...)"
    declared = header[5:].split(";", 1)[0]
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "the data URI's payload is not valid base64"
    found = detected_mime(data)
    if found is None:
        return "the bytes are not a PNG, JPEG, GIF or WebP image"
    if found != declared:
        return f"the data URI says {declared} but the bytes are {found}"
    return None
