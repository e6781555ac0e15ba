"""The chat view's messages between the browser and the kernel.

The view asks (``SnapshotRequest`` on every render, ``SendRequest`` for a follow-up,
``UploadRequest`` for an image the user attaches, ``ImageRequest`` for a thumbnail or a
full image), the kernel answers with the same ``request_id`` (``SnapshotReply``,
``SendReply``, ``UploadReply``, ``ImageReply``, or the shared ``ErrorReply``), and pushes
the chat's live frames as ``ChatFrameMessage``,
numbered by ``seq`` so a view can drop frames its snapshot already holds. The
TypeScript side of these types is ``labextension/src/chat/protocol.ts``.

Image bytes travel as the comm message's binary buffers (an ``UploadRequest``'s and an
``ImageReply``'s first buffer), never as base64 inside the JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from boonb.attachments import AttachmentRef, ImageMime
from boonb.frames import Frame, SessionRestored, SessionState
from boonb.widgets.protocol import ErrorReply

MAX_SEND_CHARS = 100_000
MAX_SEND_IMAGES = 10
"""Images one follow-up may carry."""
UPLOAD_CHUNK_BYTES = 4 << 20
"""The most bytes of a file one upload message carries: the Jupyter server (Tornado) closes
a websocket whose message is over 10 MiB, so a 20 MB photo goes in chunks."""
MAX_IMAGE_WIDTH = 8192
"""The widest thumbnail a view may ask for (a full image is asked for without a width)."""


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
    text: str = Field(default="", max_length=MAX_SEND_CHARS)
    images: list[AttachmentRef] = Field(default=[], max_length=MAX_SEND_IMAGES)
    """Images uploaded before (``UploadReply.attachment``), sent with the text."""

    @model_validator(mode="after")
    def _not_empty(self) -> SendRequest:
        if not self.text and not self.images:
            raise ValueError("a follow-up needs text or at least one image")
        return self


class UploadRequest(_Message):
    """A chunk of an image the user attached: its bytes are the message's buffer.

    The bytes are the comm message's first binary buffer, never base64 in this JSON, at
    most ``UPLOAD_CHUNK_BYTES`` of them; the chunks of a file follow each other, each sent
    once the previous one was acknowledged. When the last one is in, the kernel reads the
    type from the content (``name`` is for display only) and stores the image; what is not
    a supported image or is too large gets an ``ErrorReply`` saying why.
    """

    kind: Literal["upload"]
    request_id: str = Field(min_length=1, max_length=200)
    upload_id: str = Field(min_length=1, max_length=200)
    """The same for every chunk of one file."""
    name: str = Field(default="", max_length=1000)
    size: int = Field(ge=0)
    """The whole file's size as the browser declares it: checked against the limit with
    the first chunk, before the rest is sent."""
    offset: int = Field(default=0, ge=0)
    """Where this chunk starts in the file."""


class ImageRequest(_Message):
    """A stored image's bytes: a thumbnail at most ``max_width`` wide, or the full image."""

    kind: Literal["image"]
    request_id: str = Field(min_length=1, max_length=200)
    attachment: AttachmentRef
    max_width: int | None = Field(default=None, ge=1, le=MAX_IMAGE_WIDTH)
    """None: the full image, as stored."""


ChatRequest = Annotated[
    SnapshotRequest | SendRequest | UploadRequest | ImageRequest, Field(discriminator="kind")
]
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
    """The text parts; image parts are in ``images``."""
    images: list[AttachmentRef] = []
    """The images of a user message, in order (fetch them with an ``ImageRequest``)."""
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
    max_attachment_bytes: int = 0
    """The largest image the kernel takes (MAX_ATTACHMENT_SIZE_MB), so the browser can
    refuse a larger one before reading it; 0: unknown. The kernel checks again."""


class SendReply(_Message):
    """A follow-up from the chat view was accepted and its turn started."""

    kind: Literal["send"] = "send"
    request_id: str
    turn_number: int
    """The turn the follow-up starts."""


class UploadReply(_Message):
    """A chunk arrived; after the last one, the image was checked and stored."""

    kind: Literal["upload"] = "upload"
    request_id: str
    received: int
    """Bytes of the file the kernel holds so far: the next chunk starts there."""
    attachment: AttachmentRef | None = None
    """The stored image, once the whole file is in: send it with the follow-up."""


class ImageReply(_Message):
    """A stored image's bytes, as the message's first binary buffer (never in this JSON)."""

    kind: Literal["image"] = "image"
    request_id: str
    sha256: str
    mime: ImageMime
    """PNG or JPEG for a thumbnail; the stored type for a full image."""
    width: int
    height: int


class ChatFrameMessage(_Message):
    """A live frame of the chat, numbered so the view can drop what a snapshot covered."""

    kind: Literal["frame"] = "frame"
    seq: int
    frame: Frame
    message: ChatMessage | None = None
    """For ``message:complete``: the message as the view shows it, with its index."""


ChatReply = SnapshotReply | SendReply | UploadReply | ImageReply | ErrorReply


def parse_chat_request(content: Any) -> ChatRequest:
    """Validate a message from the view (raises ``pydantic.ValidationError``)."""
    return chat_request_adapter.validate_python(content)
