"""Images in a conversation: references in the history, data URIs only on the wire.

The history (and so snapshots, traces and frames) holds an image as the part
``{"type": "image", "image": <AttachmentRef>}``. Each request is built from it by
:func:`wire_messages`, which reads the stored bytes and sends them as a base64 data-URI
``image_url`` part, the form every OpenAI-compatible vision model takes; the data URI is
dropped with the request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from typing import Any

from boonb.attachments import IMAGE_PART, AttachmentRef, AttachmentStore, UnreadableImage
from boonb.errors import AgentError
from boonb.providers import CapabilityError, Profile, ProviderHTTPError


async def prompt_content(
    prompt: str | list[dict[str, Any]],
    images: Sequence[AttachmentRef],
    *,
    profile: Profile,
    model: str,
    store: AttachmentStore,
    history: Sequence[dict[str, Any]],
) -> tuple[str | list[dict[str, Any]], int]:
    """A new user message's content and how many images it sends.

    Raises before anything is kept in the chat if the model cannot see them (or those of
    ``history``) or one is missing. A data-URI ``image_url`` part of a list prompt is
    stored (off the event loop) and kept as a reference, like ``images``.
    """
    inline: list[AttachmentRef] = []
    remote = 0
    if isinstance(prompt, list):
        remote = remote_images(prompt)
        inlined = sum(_data_uri_of(p) is not None for p in prompt)
        check_vision(profile, model, new=remote + inlined + len(images))  # before storing
        prompt, inline = await asyncio.to_thread(store_inline_images, prompt, store)
    vision_check(profile, model, store, [*inline, *images], earlier=history_images(history))
    if images:
        prompt = user_content(prompt, images)
    return prompt, len(inline) + len(images) + remote


def user_content(
    prompt: str | list[dict[str, Any]], images: Sequence[AttachmentRef]
) -> list[dict[str, Any]]:
    """A user message's content: the prompt's text, then one part per image."""
    parts = [{"type": "text", "text": prompt}] if isinstance(prompt, str) else list(prompt)
    return [*parts, *(ref.to_part() for ref in images)]


def history_images(messages: Sequence[dict[str, Any]]) -> list[AttachmentRef]:
    """Every stored image the history holds, in order."""
    found = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                ref = AttachmentRef.from_part(part) if isinstance(part, dict) else None
                if ref is not None:
                    found.append(ref)
    return found


def vision_check(
    profile: Profile,
    model: str,
    store: AttachmentStore,
    images: Sequence[AttachmentRef],
    *,
    earlier: Sequence[AttachmentRef] = (),
) -> None:
    """Refuse, before anything is sent or kept, images a model cannot take or find.

    ``images`` come with the new message, ``earlier`` are in the chat's history already.
    """
    check_vision(profile, model, new=len(images), earlier=len(earlier))
    for ref in [*earlier, *images]:
        store.path_of(ref)  # raises AttachmentNotFound, naming the image and what to do


def check_vision(profile: Profile, model: str, *, new: int, earlier: int = 0) -> None:
    """Raise :class:`CapabilityError` if ``model`` cannot see and there are images to send.

    ``new`` images come with the message, ``earlier`` ones are in the chat's history. Called
    before any image is stored, so a refusal leaves nothing behind.
    """
    if not new and not earlier:
        return
    if not profile.spec(model).capabilities.vision:
        what = (
            f"this message has {new} image(s) to send"
            if new
            else f"this chat holds {earlier} image(s) from earlier turns, which every "
            "request re-sends"
        )
        instead = "send the message without images" if new else "start a new chat"
        raise CapabilityError(
            f"model {model!r} (profile {profile.name!r}) cannot read images, and {what}. "
            f"Nothing was sent and the chat is unchanged: {instead}, or use a vision model "
            "(e.g. %boonb config provider=openai model=gpt-4o-mini); if this model does take "
            "images, say so with %boonb config vision=true (BOONB_VISION=1)."
        )


def wire_messages(
    messages: Sequence[dict[str, Any]], store: AttachmentStore
) -> list[dict[str, Any]]:
    """The messages as sent: each stored image replaced by its data-URI ``image_url`` part."""
    uris: dict[str, str] = {}  # the same image twice in a prompt is read once

    def on_wire(part: Any) -> Any:
        ref = AttachmentRef.from_part(part) if isinstance(part, dict) else None
        if ref is None:
            return part
        if ref.sha256 not in uris:
            uris[ref.sha256] = store.data_uri(ref)
        return {"type": "image_url", "image_url": {"url": uris[ref.sha256]}}

    wire = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == IMAGE_PART for p in content
        ):
            message = {**message, "content": [on_wire(part) for part in content]}
        wire.append(message)
    return wire


def store_inline_images(
    parts: Sequence[dict[str, Any]], store: AttachmentStore
) -> tuple[list[dict[str, Any]], list[AttachmentRef]]:
    """A prompt's parts with each data-URI ``image_url`` stored and replaced by its reference.

    A data URI must never be kept (history, traces, frames, snapshots hold references), so
    one given in a list prompt is decoded and stored like any other image. Returns the parts
    and the references made. Blocking file I/O: call it off the event loop.
    """
    stored: list[dict[str, Any]] = []
    refs: list[AttachmentRef] = []
    for position, part in enumerate(parts):
        url = _data_uri_of(part)
        if url is None:
            stored.append(part)
            continue
        ref = store.add_bytes(_decode_data_uri(url, position), name=f"image {position + 1}")
        refs.append(ref)
        stored.append(ref.to_part())
    return stored, refs


def remote_images(parts: Sequence[dict[str, Any]]) -> int:
    """How many ``image_url`` parts point elsewhere than a data URI (the server fetches them)."""
    return sum(
        1
        for p in parts
        if isinstance(p, dict) and p.get("type") == "image_url" and _data_uri_of(p) is None
    )


def _data_uri_of(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) and url.startswith("data:") else None


def _decode_data_uri(url: str, position: int) -> bytes:
    head, comma, payload = url.partition(",")
    try:
        if not comma or not head.endswith(";base64"):
            raise ValueError("it is not base64-encoded")
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise UnreadableImage(
            f"part {position} of the prompt is an image data URI that cannot be decoded "
            f"({exc}); give the image as images=[...] (a path, bytes, a PIL image or a figure)"
        ) from None


# A message the server refused.


def refused_by_server(exc: BaseException) -> bool:
    """Whether a model call (or the run it failed) was refused outright by the server (400).

    A profile can be wrong about a model (a local server, a vision override): then the
    server, not boonb, refuses the images, and the message must not stay in the history
    to be re-sent, and refused, on every later turn.
    """
    cause = exc.__cause__ if isinstance(exc, AgentError) else exc
    return isinstance(cause, ProviderHTTPError) and cause.status == 400


def refusal_error(exc: AgentError, images: int) -> AgentError:
    """The error a user reads when the server refused a message with ``images`` images."""
    return AgentError(
        f"the model server refused the message with {images} image(s): {exc.__cause__}. "
        "The message was taken out of the chat, so the next one works; use a vision model, "
        "or %boonb config vision=false if this model cannot see."
    )


def without(messages: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """``messages`` less ``message`` (by identity: an equal message elsewhere stays)."""
    return [m for m in messages if m is not message]


def jsonable(value: Any) -> Any:
    """Message content for a trace: image data URIs shortened so traces stay small."""
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _shorten_data_uri(k, v) for k, v in value.items()}
    return value


def _shorten_data_uri(key: str, value: Any) -> Any:
    if key == "url" and isinstance(value, str) and value.startswith("data:"):
        head = value.split(",", 1)[0]
        return f"{head},<{len(value)} characters>"
    return jsonable(value)
