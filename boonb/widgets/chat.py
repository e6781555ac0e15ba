"""``ChatView``: an agent's pane — the conversation, a turn timeline and a follow-up box.

The view (``labextension/src/chat/``) keeps no state in synced traits: on every render
it asks for a snapshot, answered from the live agent when it runs in this kernel and
from its saved session otherwise, so a refreshed page shows the same turns and pending
tool calls. The chat's live frames are pushed as they are published (from the engine
thread), numbered so the view can tell which ones its snapshot already holds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, assert_never

from pydantic import ValidationError

from boonb.agent.images import history_images, vision_check
from boonb.agent.sessions import load_snapshot, snapshot
from boonb.attachments import AttachmentError, AttachmentStore
from boonb.frames import (
    Frame,
    MessageComplete,
    MessageDelta,
    ModelCallComplete,
    SessionRestored,
    SessionSaved,
    ToolTraceComplete,
    ToolTraceStart,
    TurnComplete,
    TurnStart,
)
from boonb.providers import CapabilityError
from boonb.store import StoreError
from boonb.widgets.chat_history import (
    chat_message,
    chat_messages,
    complete_turns,
    pending_calls,
    read_turns,
    session_of_chat,
    static_html,
    static_text,
)
from boonb.widgets.chat_protocol import (
    ChatFrameMessage,
    ChatMessage,
    ChatReply,
    ImageRequest,
    SendReply,
    SendRequest,
    SnapshotReply,
    SnapshotRequest,
    StreamingText,
    UploadReply,
    UploadRequest,
    parse_chat_request,
)
from boonb.widgets.common import STATIC, ChatIdError, ChatWidget, bundle, chat_uuid
from boonb.widgets.images import (
    ChunkedUploads,
    attachment_store,
    finish_upload,
    read_image,
    reply_in_background,
)
from boonb.widgets.protocol import ErrorReply, describe_invalid, request_id_of
from boonb.widgets.tasks import TasksPane

if TYPE_CHECKING:
    import concurrent.futures

    from IPython.display import DisplayHandle

    from boonb.agent.loop import Agent, AgentResult
    from boonb.runtime import Runtime

log = logging.getLogger("boonb.widgets")

SPAWN_TOOL = "spawn_subagent"
"""The tool whose first call puts the tasks pane under the chat."""

LIVE_FRAME_TYPES = frozenset(
    {
        "message:delta",
        "message:complete",
        "turn:start",
        "turn:complete",
        "tool_trace:start",
        "tool_trace:complete",
        "model_call:complete",
        "session_saved",
        "session_restored",
    }
)

_MISSING_BUNDLE = """
export default {
  render({ el }) {
    el.textContent = "boonb: the chat view's script is not built. "
      + "Run `npm ci && npm run build` in labextension/ (or reinstall boonb).";
  },
};
"""

__all__ = [
    "STATIC",
    "ChatDisplay",
    "ChatIdError",
    "ChatView",
    "SessionNotAvailable",
    "display_chat",
    "resume_command",
]


class SessionNotAvailable(StoreError):
    """The chat is neither running in this kernel nor saved in the project database."""


class ChatView(ChatWidget):
    """One agent's conversation: bubbles, tool calls, a turn timeline and a follow-up box."""

    _esm = bundle("chat.js", _MISSING_BUNDLE)
    _css = bundle("chat.css", "")

    def __init__(
        self,
        chat_id: uuid.UUID | str | None = None,
        *,
        agent: Agent | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        if runtime is None:
            from boonb.runtime import get_runtime

            runtime = get_runtime()
        if agent is not None:
            chat = agent.chat_id
        else:
            chat = chat_uuid(chat_id if chat_id is not None else runtime.last_chat_id)
        # Guarded by _send_lock: what the view needs beyond the agent's own state.
        self._agent = agent
        self._seq = 0
        self._streaming: dict[int, str] = {}
        self._turn_started: dict[int, datetime] = {}
        self._run: concurrent.futures.Future[AgentResult] | None = None
        self._uploads = ChunkedUploads()
        # Where the pane of the subagents this chat's agent spawns goes (see display_chat),
        # and that pane once its first spawn_subagent call started.
        self._tasks_slot: DisplayHandle | None = None
        self._tasks_pane: TasksPane | None = None
        self._tasks_shown: threading.Thread | None = None
        super().__init__(chat, runtime, frame_types=LIVE_FRAME_TYPES)

    # Requests from the view (on the kernel's main thread, when no cell is running).

    def answer(self, content: Any) -> ChatReply:
        """The reply to one request from the view; a bad request gets an ``ErrorReply``.

        Requests with image bytes come through ``_on_custom_msg``, which has the message's
        buffers: upload chunks (the last one stored off this thread) and thumbnails (read
        off this thread, sent as a buffer). Here they get no bytes.
        """
        try:
            request = parse_chat_request(content)
        except ValidationError as exc:
            return ErrorReply(request_id=request_id_of(content), message=describe_invalid(exc))
        try:
            match request:
                case SnapshotRequest():
                    return self.snapshot(request.request_id)
                case SendRequest():
                    return self._follow_up(request)
                case UploadRequest():  # its bytes come through _on_custom_msg
                    return _no_bytes(request)
                case ImageRequest():
                    return read_image(self._attachments(), request)[0]
                case _:
                    assert_never(request)
        except StoreError as exc:
            return ErrorReply(request_id=request.request_id, message=str(exc))

    def _on_custom_msg(self, _widget: object, content: Any, buffers: Any) -> None:
        try:
            request = parse_chat_request(content)
        except ValidationError:
            request = None
        if not isinstance(request, UploadRequest | ImageRequest):
            super()._on_custom_msg(_widget, content, buffers)
            return
        store = self._attachments()
        match request:
            case UploadRequest():
                self._receive_upload(store, request, list(buffers or []))
            case ImageRequest():
                reply_in_background(self, request.request_id, lambda: read_image(store, request))
            case _:
                assert_never(request)

    def _receive_upload(
        self, store: AttachmentStore, request: UploadRequest, buffers: list[Any]
    ) -> None:
        """Append a chunk of an upload; once the file is whole, store it off this thread."""
        reply: ChatReply
        if not buffers:
            reply = _no_bytes(request)
        else:
            try:
                upload = self._uploads.receive(store, request, buffers[0])
            except AttachmentError as exc:
                reply = ErrorReply(request_id=request.request_id, message=str(exc))
            else:
                if upload.received == upload.size:
                    reply_in_background(
                        self,
                        request.request_id,
                        lambda: (finish_upload(store, request, upload), []),
                    )
                    return
                reply = UploadReply(request_id=request.request_id, received=upload.received)
        self._send_message(reply.model_dump(mode="json"))

    def _attachments(self) -> AttachmentStore:
        return attachment_store(self._runtime)

    def snapshot(self, request_id: str) -> SnapshotReply:
        """What the view shows now (raises ``StoreError`` when the chat cannot be found)."""
        agent = self._live_agent()
        saver = self._runtime.savers.get(self._chat)
        with self._send_lock:  # consistent with the frames numbered up to seq
            seq = self._seq
            streaming = dict(self._streaming)
            started = dict(self._turn_started)
            running_here = self._run is not None and not self._run.done()
            snap = None
            if agent is not None:
                session_id = saver.agent_session_id if saver is not None else uuid.UUID(int=0)
                snap = snapshot(agent, agent_session_id=session_id)
        store = self._runtime.store
        if snap is None:
            saved_id = session_of_chat(store, self._chat)
            snap = load_snapshot(store, saved_id) if saved_id is not None else None
            if snap is None:
                raise SessionNotAvailable(
                    f"chat {self._chat} is not running in this kernel and has no saved "
                    "session in this project; see %agent sessions"
                )
        turns, answered = read_turns(store, self._chat)
        messages = chat_messages(snap["messages"], answered)
        turns = complete_turns(turns, messages, snap)
        turns = [
            t.model_copy(update={"started_at": started[t.turn_number]})
            if t.started_at is None and t.turn_number in started
            else t
            for t in turns
        ]
        answered_turns = {m.turn_number for m in messages if m.role == "assistant"}
        stream = next(
            (
                StreamingText(turn_number=turn, text=text)
                for turn, text in sorted(streaming.items())
                if turn not in answered_turns and text
            ),
            None,
        )
        pending = pending_calls(snap)
        blocked = self._send_blocked(agent, snap, running_here=running_here)
        restored = None
        if saver is not None or agent is None:
            restored = SessionRestored(
                agent_session_id=uuid.UUID(snap["agent_session_id"]),
                chat_id=self._chat,
                state=snap["state"],
                snapshot=snap,
            )
        return SnapshotReply(
            request_id=request_id,
            seq=seq,
            chat_id=str(self._chat),
            live=agent is not None,
            can_send=blocked is None,
            send_blocked=blocked,
            state=snap["state"],
            phase=snap.get("phase", "idle"),
            title=snap.get("title", ""),
            turn_number=snap.get("turn_number", 0),
            messages=messages,
            turns=turns,
            pending_tool_calls=pending,
            restarts=sorted({m.turn_number for m in messages if m.restart}),
            streaming=stream,
            restored=restored,
            max_attachment_bytes=int(self._runtime.settings.max_attachment_size_mb * 1024 * 1024),
        )

    def _send_blocked(
        self, agent: Agent | None, snap: dict[str, Any], *, running_here: bool
    ) -> str | None:
        if agent is None:
            command = resume_command(self._chat)
            return f"this chat is not running in this kernel; resume it with {command}"
        if running_here or snap["state"] == "in_progress":
            return "the agent is still running; wait for its answer"
        if snap.get("pending_tool_calls"):
            return "the session has tool calls to replay; carry it on with %agent resume"
        return None

    def _follow_up(self, request: SendRequest) -> SendReply | ErrorReply:
        agent = self._live_agent()
        with self._send_lock:
            running_here = self._run is not None and not self._run.done()
        state = {
            "state": agent.state if agent is not None else "interrupted",
            "pending_tool_calls": agent.pending_tool_calls() if agent is not None else [],
        }
        blocked = self._send_blocked(agent, state, running_here=running_here)
        if blocked is not None or agent is None:
            return ErrorReply(request_id=request.request_id, message=f"not sent: {blocked}")
        try:  # refused here, not in the run: the view must hear why nothing was sent
            vision_check(
                agent.client.profile,
                agent.model,
                agent.attachments,
                request.images,
                earlier=history_images(agent.messages),
            )
        except (AttachmentError, CapabilityError) as exc:
            return ErrorReply(request_id=request.request_id, message=f"not sent: {exc}")
        turn = agent.turn_number + 1
        future = self._runtime.engine.submit(agent.run(request.text, images=request.images))
        future.add_done_callback(_log_failure)
        with self._send_lock:
            self._run = future
        return SendReply(request_id=request.request_id, turn_number=turn)

    def _live_agent(self) -> Agent | None:
        return self._agent or self._runtime.chats.get(self._chat)

    # Live frames (on the publishing thread).

    def _on_frame(self, frame: Frame) -> None:
        if _chat_of(frame) != self._chat:
            return
        if isinstance(frame, ToolTraceStart) and frame.tool_name == SPAWN_TOOL:
            self._show_tasks()
        with self._send_lock:
            message = None
            match frame:
                case MessageDelta(channel="content"):
                    turn = frame.turn_number
                    self._streaming[turn] = self._streaming.get(turn, "") + frame.text
                case MessageComplete():
                    if frame.role == "assistant":
                        self._streaming.pop(frame.turn_number, None)
                    message = self._message_of(frame)
                case TurnStart():
                    self._turn_started[frame.turn_number] = frame.started_at
                case _:
                    pass
            self._seq += 1
            content = ChatFrameMessage(seq=self._seq, frame=frame, message=message)
            self.send(content.model_dump(mode="json"))

    def _show_tasks(self) -> None:
        """Fill the slot under the chat with the pane of its agent's subagents (once)."""
        with self._send_lock:
            slot = self._tasks_slot
            if slot is None or self._tasks_pane is not None:
                return
            pane = self._tasks_pane = TasksPane(spawned_by=self._chat, runtime=self._runtime)
        # By display id, so it lands in the chat's cell from any thread, and also after that
        # cell finished (a follow-up from the chat's input box spawning). From a thread of
        # its own: displaying reads the project database (the static fallback), which the
        # engine's thread, publishing this frame, must not wait for.
        shown = threading.Thread(
            target=slot.update, args=(pane,), name="boonb-chat-tasks-slot", daemon=True
        )
        self._tasks_shown = shown
        shown.start()

    def refresh_tasks(self) -> None:
        """Publish the tasks pane again, once shown, so its saved fallback is as of now."""
        slot, pane, shown = self._tasks_slot, self._tasks_pane, self._tasks_shown
        if slot is None or pane is None:
            return
        if shown is not None:
            shown.join()  # after the first display, never overtaken by it
        slot.update(pane)

    @property
    def tasks_pane(self) -> TasksPane | None:
        """The pane of the subagents this chat's agent spawned, once it spawned one."""
        return self._tasks_pane

    def close(self) -> None:
        """Close the chat's tasks pane too, drop half-sent uploads, then the view."""
        pane, self._tasks_pane = getattr(self, "_tasks_pane", None), None
        if pane is not None:
            pane.close()
        uploads = getattr(self, "_uploads", None)
        if uploads is not None:
            uploads.discard()
        super().close()

    def _message_of(self, frame: MessageComplete) -> ChatMessage | None:
        """The message just appended to the agent's history (published right after it)."""
        agent = self._live_agent()
        if agent is None or not agent.messages:
            return None
        index = len(agent.messages) - 1
        stored = agent.messages[index]
        if stored.get("role") != frame.role:
            return None
        return chat_message(stored, index=index, turn_number=frame.turn_number)

    # Static rendering, for nbviewer, GitHub and terminal IPython.

    def static(self) -> tuple[str, str]:
        reply = self.snapshot("static")
        return static_text(reply), static_html(reply)


def resume_command(chat: uuid.UUID) -> str:
    """The command that resumes a chat, with the id as the view's header shows it."""
    return f"%agent resume {str(chat)[:8]}"


@dataclass(frozen=True)
class ChatDisplay:
    """A chat view displayed in a cell's output, with the handle that updates that output."""

    view: ChatView
    handle: DisplayHandle

    def refresh(self) -> None:
        """Publish the view again, so the output's saved fallback shows the chat as it is now.

        A notebook keeps the text/html and text/plain computed at display time, before the
        run; without this a notebook opened on GitHub shows an empty chat.
        """
        self.handle.update(self.view)
        self.view.refresh_tasks()


def display_chat(agent: Agent) -> ChatDisplay:
    """Display the agent's chat view in the running cell's output, with a display id.

    Under it goes an empty output: the slot the pane of the agent's subagents fills once
    the agent spawns one. Empty, it takes no room in JupyterLab (an empty ``text/plain``
    output has no height) and shows nothing in a saved notebook.
    """
    from IPython.display import display

    view = ChatView(agent=agent)
    handle = display(view, display_id=True)
    view._tasks_slot = display({"text/plain": ""}, raw=True, display_id=True)
    return ChatDisplay(view=view, handle=handle)


def _no_bytes(request: UploadRequest) -> ErrorReply:
    return ErrorReply(
        request_id=request.request_id,
        message=f"{request.name or 'the image'!r} arrived without its bytes (the upload "
        "carries them as the comm message's binary buffer); attach it again",
    )


def _chat_of(frame: Frame) -> uuid.UUID | None:
    match frame:
        case ToolTraceComplete(trace=trace) | ModelCallComplete(trace=trace):
            return trace.chat_id
        case (
            MessageDelta()
            | MessageComplete()
            | TurnStart()
            | TurnComplete()
            | ToolTraceStart()
            | SessionSaved()
            | SessionRestored()
        ):
            return frame.chat_id
        case _:
            return None


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.info("chat view: the follow-up run ended with %s", error)
