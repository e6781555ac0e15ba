"""What the widgets share: their bundles, how they name a chat, and the live-widget plumbing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anywidget
import traitlets
from pydantic import BaseModel

from boonb.frames import Frame
from boonb.store import InvalidQuery, StoreError

if TYPE_CHECKING:
    from boonb.runtime import Runtime

STATIC = Path(__file__).resolve().parent.parent / "static"


class ChatIdError(InvalidQuery):
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


class ChatWidget(anywidget.AnyWidget):
    """A widget showing one chat: answers the view's requests, forwards live frames.

    Requests from the view arrive on the kernel's main thread (when no cell runs);
    frames arrive on the publishing thread, often the engine's. Both send, so every
    send holds ``_send_lock`` and each message stays whole. Subclasses give
    ``answer`` (request -> reply), ``_on_frame`` and ``static`` (text, html) for
    frontends without a widget manager.
    """

    chat_id = traitlets.Unicode().tag(sync=True)
    """The chat shown (set once, at construction)."""

    def __init__(self, chat: UUID, runtime: Runtime, *, frame_types: Iterable[str]) -> None:
        super().__init__(chat_id=str(chat))
        self._chat = chat
        self._runtime = runtime
        self._send_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = runtime.bus.subscribe(
            self._on_frame, types=frame_types
        )
        self.on_msg(self._on_custom_msg)

    # Each widget provides these.
    answer: Callable[[Any], BaseModel]
    """The reply to one request from the view (a bad request gets an error reply)."""
    static: Callable[[], tuple[str, str]]
    """Plain text and HTML for nbviewer, GitHub and terminal IPython."""
    _on_frame: Callable[[Frame], None]

    def _on_custom_msg(self, _widget: object, content: Any, _buffers: object) -> None:
        self._send_message(self.answer(content).model_dump(mode="json"))

    def _send_message(self, content: dict[str, Any]) -> None:
        with self._send_lock:
            self.send(content)

    def close(self) -> None:
        """Stop forwarding live frames and close the widget."""
        unsubscribe, self._unsubscribe = getattr(self, "_unsubscribe", None), None
        if unsubscribe is not None:
            unsubscribe()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        shown = super()._repr_mimebundle_(**kwargs)
        data, metadata = shown if shown is not None else ({}, {})
        name = type(self).__name__
        try:
            text, html = self.static()
        except StoreError as exc:
            data["text/plain"] = f"{name}(chat {self._chat}): store unavailable: {exc}"
            return data, metadata
        data["text/plain"] = text
        data["text/html"] = html
        return data, metadata

    def __repr__(self) -> str:
        return f"<{type(self).__name__} chat={getattr(self, '_chat', None)}>"
