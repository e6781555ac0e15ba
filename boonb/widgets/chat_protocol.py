"""The chat view's messages between the browser and the kernel.

The view asks (``SnapshotRequest`` on every render, ``SendRequest`` for a follow-up),
the kernel answers with the same ``request_id`` (``SnapshotReply``, ``SendReply``, or
the shared ``ErrorReply``), and pushes the chat's live frames as ``ChatFrameMessage``,
numbered by ``seq`` so a view can drop frames its snapshot already holds. The
TypeScript side of these types is ``labextension/src/chat/protocol.ts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from boonb.frames import Frame, SessionRestored, SessionState
from boonb.widgets.protocol import ErrorReply

MAX_SEND_CHARS = 100_000


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SnapshotRequest(_Message):
    """Everything the view shows: the conversation, its turns and the pending tool calls."""

    kind: Literal["snapshot"]
    request_id: str = Field(min_length=1, max_length=200)


class SendRequest(_Message):
    """Run a follow-up turn with ``text`` as the user's message."""

    kind: Literal["send"]
    request_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_SEND_CHARS)


ChatRequest = Annotated[SnapshotRequest | SendRequest, Field(discriminator="kind")]
chat_request_adapter: TypeAdapter[ChatRequest] = TypeAdapter(ChatRequest)


class ToolCallView(_Message):
    """A tool call of an assistant message, as the chat view shows it."""

    id: str
    name: str
    arguments: str
    """The arguments as the model sent them (JSON text, usually)."""


class ChatMessage(_Message):
    """One message of the conversation, as the view shows it."""

    index: int
    """Position in the agent's history (0 is the system prompt)."""
    role: Literal["system", "user", "assistant", "tool"]
    turn_number: int
    """The turn it belongs to: a user message belongs to the turn it starts."""
    content: str
    """Text; image parts are shown as ``[image]``."""
    tool_calls: list[ToolCallView] = []
    tool_call_id: str | None = None
    restart: bool = False
    """The note boonb adds when a session is resumed after a kernel restart."""


class PendingToolCall(_Message):
    """A tool call the model asked for whose result is not in yet."""

    id: str
    name: str
    arguments: str
    running: bool
    """True while this kernel runs it; False when it waits to be replayed (resume)."""


class TurnSummary(_Message):
    """One turn of the timeline, from the chat's traces.

    Token counts follow the project's convention: ``input_tokens`` includes the
    cache-read ``cache_tokens``; ``tokens_used = input_tokens + output_tokens``.
    """

    turn_number: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tool_calls: int = 0
    input_tokens: int = 0
    cache_tokens: int = 0
    output_tokens: int = 0
    tokens_used: int = 0
    errors: int = 0
    cache_broken_by: str | None = None
    """The first prompt segment sent before that had changed (why the cache missed)."""


class StreamingText(_Message):
    """Assistant text streamed so far in a turn whose message is not complete yet."""

    turn_number: int
    text: str


class SnapshotReply(_Message):
    """The chat as it is now, for a view that opens or reconnects; live frames follow."""

    kind: Literal["snapshot"] = "snapshot"
    request_id: str
    seq: int
    """The last live frame this reply already reflects; later frames have a higher seq."""
    chat_id: str
    live: bool
    """The agent is in this kernel (it can take a follow-up), not only saved."""
    can_send: bool
    send_blocked: str | None
    """Why a follow-up cannot be sent now, when it cannot."""
    state: SessionState
    phase: str
    title: str
    turn_number: int
    messages: list[ChatMessage]
    turns: list[TurnSummary]
    pending_tool_calls: list[PendingToolCall]
    restarts: list[int]
    """Turns started by a resume after a kernel restart (the timeline marks them)."""
    streaming: StreamingText | None = None
    restored: SessionRestored | None = None
    """The session as saved, as a ``session_restored`` frame (None if never saved)."""


class SendReply(_Message):
    """A follow-up from the chat view was accepted and its turn started."""

    kind: Literal["send"] = "send"
    request_id: str
    turn_number: int
    """The turn the follow-up starts."""


class ChatFrameMessage(_Message):
    """A live frame of the chat, numbered so the view can drop what a snapshot covered."""

    kind: Literal["frame"] = "frame"
    seq: int
    frame: Frame
    message: ChatMessage | None = None
    """For ``message:complete``: the message as the view shows it, with its index."""


ChatReply = SnapshotReply | SendReply | ErrorReply


def parse_chat_request(content: Any) -> ChatRequest:
    """Validate a message from the view (raises ``pydantic.ValidationError``)."""
    return chat_request_adapter.validate_python(content)
