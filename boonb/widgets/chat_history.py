"""The chat view's projection of a session: messages by turn, the turn timeline, pending calls.

Pure functions over a session snapshot (``boonb.agent.sessions.snapshot``, live or
loaded from ``agent_sessions``) and the chat's traces, plus the static rendering used
where no widget manager runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from boonb.agent.sessions import RESTART_NOTE
from boonb.attachments import AttachmentRef
from boonb.store import Store
from boonb.store.projections import turns as turns_of
from boonb.widgets.chat_protocol import (
    ChatMessage,
    PendingToolCall,
    SnapshotReply,
    ToolCallView,
    TurnSummary,
)
from boonb.widgets.summary import format_tokens

_SESSION_OF_CHAT_SQL = (
    "SELECT id FROM agent_sessions WHERE chat_id = ? ORDER BY last_update DESC LIMIT 1"
)

_TEXT_CUT = 2000


def session_of_chat(store: Store, chat_id: UUID) -> UUID | None:
    """The newest saved session of a chat, if it was ever saved."""
    store.writer.flush()
    with store.db.connection() as con:
        row = con.execute(_SESSION_OF_CHAT_SQL, [chat_id]).fetchone()
    return row[0] if row else None


def read_turns(store: Store, chat_id: UUID) -> tuple[list[TurnSummary], list[int]]:
    """The chat's turns from its traces, and the turn of each answered model call, in order."""
    store.writer.flush(timeout=5)
    broken = {t.turn_number: t.broken_by for t in store.traces.turn_cache(chat_id)}
    rows = store.traces.chat_calls(chat_id)
    answered = [r.turn_number for r in rows if r.kind == "model" and r.outcome == "success"]
    turns = [
        TurnSummary(
            turn_number=turn.turn_number,
            started_at=turn.started_at,
            finished_at=turn.finished_at,
            tool_calls=turn.tool_calls,
            input_tokens=turn.input_tokens,
            cache_tokens=turn.cache_tokens,
            output_tokens=turn.output_tokens,
            tokens_used=turn.tokens_used,
            errors=turn.errors,
            cache_broken_by=broken.get(turn.turn_number),
        )
        for turn in turns_of(rows)
    ]
    return turns, answered


def message_turns(messages: Sequence[Mapping[str, Any]], answered: Sequence[int]) -> list[int]:
    """The turn of each message.

    The k-th assistant message is the answer of the k-th successful model call, whose
    trace has its turn; a user message belongs to the turn of the next answer, a tool
    result to the turn of the call. Without traces (or past them), turns count on.
    """
    turns = [0] * len(messages)
    current = 0
    answers = 0
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            known = answered[answers] if answers < len(answered) else None
            current = known if known is not None and known > current else current + 1
            answers += 1
        turns[i] = current
    next_answer = current + 1
    for i in range(len(messages) - 1, -1, -1):
        role = messages[i].get("role")
        if role == "assistant":
            next_answer = turns[i]
        elif role == "user":
            turns[i] = next_answer
        elif role == "system":
            turns[i] = 0
    return turns


def content_text(content: Any) -> str:
    """Message content as text, without stored images (``content_images`` has them).

    A data-URI ``image_url`` part becomes ``[image]``.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, Mapping) and part.get("type") == "image_url":
                parts.append("[image]")
            elif _image_of(part) is not None:
                continue
            else:
                parts.append(json.dumps(part, default=str))
        return "\n".join(parts)
    return json.dumps(content, default=str)


def content_images(content: Any) -> list[AttachmentRef]:
    """The stored images of a message's content parts, in order."""
    if not isinstance(content, list):
        return []
    return [ref for ref in map(_image_of, content) if ref is not None]


def _image_of(part: Any) -> AttachmentRef | None:
    # A part that says it is an image but does not hold a valid reference (a session saved
    # by a newer boonb, a hand-edited file) shows as JSON text rather than breaking the chat.
    if not isinstance(part, dict):
        return None
    try:
        return AttachmentRef.from_part(part)
    except ValidationError:
        return None


def chat_message(message: Mapping[str, Any], *, index: int, turn_number: int) -> ChatMessage:
    calls = [
        ToolCallView(
            id=str(call.get("id", "")),
            name=str(call.get("function", {}).get("name", "")),
            arguments=str(call.get("function", {}).get("arguments", "")),
        )
        for call in message.get("tool_calls") or []
    ]
    text = content_text(message.get("content"))
    return ChatMessage(
        index=index,
        role=message.get("role", "user"),
        turn_number=turn_number,
        content=text,
        images=content_images(message.get("content")),
        tool_calls=calls,
        tool_call_id=message.get("tool_call_id"),
        restart=message.get("role") == "user" and text == RESTART_NOTE,
    )


def chat_messages(
    messages: Sequence[Mapping[str, Any]], answered: Sequence[int]
) -> list[ChatMessage]:
    turns = message_turns(messages, answered)
    return [
        chat_message(m, index=i, turn_number=t)
        for i, (m, t) in enumerate(zip(messages, turns, strict=True))
    ]


def pending_calls(snap: Mapping[str, Any]) -> list[PendingToolCall]:
    running = snap.get("state") == "in_progress" and snap.get("phase") == "tools"
    return [
        PendingToolCall(
            id=str(c["id"]), name=str(c["name"]), arguments=str(c["arguments"]), running=running
        )
        for c in snap.get("pending_tool_calls") or []
    ]


def complete_turns(
    turns: list[TurnSummary], messages: Iterable[ChatMessage], snap: Mapping[str, Any]
) -> list[TurnSummary]:
    """Add turns that have messages or are running but no trace yet (a model call under way)."""
    known = {t.turn_number for t in turns}
    wanted = {m.turn_number for m in messages if m.role != "system" and m.turn_number > 0}
    if snap.get("state") == "in_progress" and int(snap.get("turn_number", 0)) > 0:
        wanted.add(int(snap["turn_number"]))
    extra = [TurnSummary(turn_number=n) for n in sorted(wanted - known)]
    return sorted([*turns, *extra], key=lambda t: t.turn_number)


# Static rendering, for nbviewer, GitHub and terminal IPython.

STATE_LABELS = {
    "in_progress": "running",
    "awaiting_input": "awaiting input",
    "completed": "finished",
    "failed": "failed",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
}


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_CUT else text[:_TEXT_CUT] + f"… ({len(text)} characters)"


def _rate(turn: TurnSummary) -> str:
    if not turn.input_tokens:
        return "–"
    return f"{turn.cache_tokens / turn.input_tokens:.0%}"


def _results(reply: SnapshotReply) -> dict[str, str]:
    return {m.tool_call_id: m.content for m in reply.messages if m.tool_call_id is not None}


def _images_note(images: Sequence[AttachmentRef]) -> str:
    # The bytes live in the project's .boonb/attachments/, not in the notebook: name them.
    names = ", ".join(
        f"{ref.name or ref.sha256[:12]} ({ref.width}×{ref.height})" for ref in images
    )
    return f"[{len(images)} image{'' if len(images) == 1 else 's'}: {names}]"


def static_text(reply: SnapshotReply) -> str:
    state = STATE_LABELS.get(reply.state, reply.state)
    turns = len(reply.turns)
    lines = [f"Chat {reply.chat_id} · {state} · {turns} turn{'' if turns == 1 else 's'}"]
    if reply.turns:
        lines.append(
            "  timeline: "
            + " | ".join(
                f"turn {t.turn_number}: {t.tool_calls} tools, "
                f"{format_tokens(t.tokens_used)} tokens, cache {_rate(t)}"
                for t in reply.turns
            )
        )
    results = _results(reply)
    pending = {c.id for c in reply.pending_tool_calls}
    for message in reply.messages:
        if message.role in ("system", "tool"):
            continue
        if message.restart:
            lines.append("  -- kernel restarted; session resumed --")
            continue
        if message.content:
            lines.append(f"{message.role}: {_cut(message.content)}")
        if message.images:
            lines.append(f"  {_images_note(message.images)}")
        for call in message.tool_calls:
            outcome = "pending" if call.id in pending else _cut(results.get(call.id, ""))
            lines.append(f"  tool {call.name}({call.arguments[:200]}) -> {outcome}")
    return "\n".join(lines)


def static_html(reply: SnapshotReply) -> str:
    state = STATE_LABELS.get(reply.state, reply.state)
    chips = "".join(
        f"<span style='display:inline-block;margin:2px 6px 2px 0;padding:2px 6px;"
        f"border:1px solid #8884;border-radius:4px'>Turn {t.turn_number} · "
        f"{t.tool_calls} tools · {format_tokens(t.tokens_used)} tok · cache {_rate(t)}</span>"
        for t in reply.turns
    )
    results = _results(reply)
    pending = {c.id for c in reply.pending_tool_calls}
    rows = []
    for message in reply.messages:
        if message.role in ("system", "tool"):
            continue
        if message.restart:
            rows.append("<div><em>— kernel restarted; session resumed —</em></div>")
            continue
        body = escape(_cut(message.content))
        if message.images:
            body += f"<br><em>{escape(_images_note(message.images))}</em>"
        calls = "".join(
            f"<details><summary><code>{escape(c.name)}</code>"
            f"{' (pending)' if c.id in pending else ''}</summary>"
            f"<pre>{escape(c.arguments[:_TEXT_CUT])}</pre>"
            f"<pre>{escape(_cut(results.get(c.id, '')))}</pre></details>"
            for c in message.tool_calls
        )
        rows.append(
            f"<div style='margin:4px 0'><strong>{escape(message.role)}</strong>: "
            f"<span style='white-space:pre-wrap'>{body}</span>{calls}</div>"
        )
    return (
        f"<div class='boonb-chat-static' data-chat-id='{escape(reply.chat_id)}'>"
        f"<strong>boonb chat</strong> · <code>{escape(reply.chat_id)}</code> · {escape(state)}"
        f"<div>{chips}</div>{''.join(rows)}</div>"
    )
