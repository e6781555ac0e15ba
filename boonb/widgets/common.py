"""What the widgets share: their built bundles and how they name a chat."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

STATIC = Path(__file__).resolve().parent.parent / "static"


class ChatIdError(ValueError):
    """No chat id was given and no agent has run in this kernel yet, or the id is no UUID."""


def bundle(name: str, fallback: str) -> Path | str:
    """A built file of boonb/static/, or ``fallback`` when the JavaScript was not built."""
    path = STATIC / name
    return path if path.is_file() else fallback


def chat_uuid(value: UUID | str | None) -> UUID:
    """The chat to show: the given id, or an explanation of why there is none."""
    if value is None:
        raise ChatIdError(
            "no chat to show: no agent has run in this kernel yet. Run %%agent first, "
            "or pass a chat id: TraceViewer(chat_id=...) or %traces CHAT_ID."
        )
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ChatIdError(f"chat id must be a UUID, got {value!r}") from None
