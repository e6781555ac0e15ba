"""Images in a conversation: references in the history, data URIs only on the wire.

The history (and so snapshots, traces and frames) holds an image as the part
``{"type": "image", "image": <AttachmentRef>}``. Each request is built from it by
:func:`wire_messages`, which reads the stored bytes and sends them as a base64 data-URI
``image_url`` part, the form every OpenAI-compatible vision model takes; the data URI is
dropped with the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boonb.attachments import IMAGE_PART, AttachmentRef, AttachmentStore
from boonb.providers import CapabilityError, Profile


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
    if not images and not earlier:
        return
    if not profile.spec(model).capabilities.vision:
        what = (
            f"this message has {len(images)} image(s) to send"
            if images
            else f"this chat holds {len(earlier)} image(s) from earlier turns, which every "
            "request re-sends"
        )
        instead = "send the message without images" if images else "start a new chat"
        raise CapabilityError(
            f"model {model!r} (profile {profile.name!r}) cannot read images, and {what}. "
            f"Nothing was sent and the chat is unchanged: {instead}, or use a vision model "
            "(e.g. %boonb config provider=openai model=gpt-4o-mini); if this model does take "
            "images, say so with %boonb config vision=true (BOONB_VISION=1)."
        )
    for ref in [*earlier, *images]:
        store.path_of(ref)  # raises AttachmentNotFound, naming the image and what to do


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
