"""What an exporter reads back: whole trace rows by tree, their cache segments, chat providers.

The OpenTelemetry backfill (:mod:`boonb.export.backfill`) sends what is stored exactly as
the live export sent it, so it needs every column of every row (inputs and outputs whole,
not cut as in a page), the cache segments the live frames carried, and the provider each
chat ran on (the live export asks the kernel's chats).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args
from uuid import UUID

from boonb.frames import CacheSegment, Segment, TraceRecord
from boonb.store.database import Database
from boonb.store.projections import chat_branch
from boonb.store.rows import TRACE_COLUMNS
from boonb.store.traces import SELECT_WHOLE, record_of

ScopeKind = Literal["tree", "chat"]
SEGMENT_ORDER = get_args(Segment)
"""The prompt's segments in prompt order, as the frames' type lists them."""


def scope_of(db: Database, found: UUID) -> ScopeKind | None:
    """What an id names: ``tree``, ``chat`` or None (unknown).

    ``tree``: the root of a tree (a workflow run, or a chat the user started); ``chat``: a
    chat that hangs in another tree (a workflow agent's, a background subagent's).
    """
    with db.connection() as con:
        row = con.execute(
            "SELECT EXISTS (SELECT 1 FROM tool_traces WHERE root_id = $id), "
            "EXISTS (SELECT 1 FROM tool_traces WHERE chat_id = $id)",
            {"id": found},
        ).fetchone()
    if row is None:
        return None
    if row[0]:
        return "tree"
    return "chat" if row[1] else None


def roots(db: Database) -> list[UUID]:
    """Every tree of the project, oldest first."""
    with db.connection() as con:
        rows = con.execute(
            "SELECT root_id FROM tool_traces GROUP BY root_id ORDER BY min(started_at), root_id"
        ).fetchall()
    return [r[0] for r in rows]


def tree_records(db: Database, root: UUID) -> list[TraceRecord]:
    """Every row of one tree, whole, in start order."""
    with db.connection() as con:
        rows = con.execute(
            f"SELECT {SELECT_WHOLE} FROM tool_traces WHERE root_id = ? ORDER BY started_at, id",
            [root],
        ).fetchall()
    return [record_of(dict(zip(TRACE_COLUMNS, row, strict=True))) for row in rows]


def chat_records(db: Database, chat: UUID) -> list[TraceRecord]:
    """The rows of one chat and of everything under them (the chats its tool calls started)."""
    with db.connection() as con:
        found = con.execute(
            "SELECT root_id FROM tool_traces WHERE chat_id = ? LIMIT 1", [chat]
        ).fetchone()
    if found is None:
        return []
    return chat_branch(tree_records(db, found[0]), chat)


def cache_segments(db: Database, trace_ids: Iterable[UUID]) -> dict[UUID, list[CacheSegment]]:
    """The cache segments of each model call, in prompt order."""
    ids = list(trace_ids)
    if not ids:
        return {}
    with db.connection() as con:
        rows = con.execute(
            "SELECT trace_id, segment, tokens, hit_tokens, miss_tokens, hash, prefix_hash "
            "FROM cache_stats WHERE list_contains($ids, trace_id) ORDER BY trace_id, "
            "list_position($order, segment)",
            {"ids": ids, "order": list(SEGMENT_ORDER)},
        ).fetchall()
    found: dict[UUID, list[CacheSegment]] = {}
    for trace_id, segment, tokens, hit, miss, hash_, prefix in rows:
        found.setdefault(trace_id, []).append(
            CacheSegment(
                segment=segment,
                tokens=tokens,
                hit_tokens=hit,
                miss_tokens=miss,
                hash=hash_,
                prefix_hash=prefix,
            )
        )
    return found


def chat_providers(db: Database, chat_ids: Iterable[UUID]) -> dict[UUID, str]:
    """The provider each chat ran on (``sim``, ``deepseek``, ``openai``, ``local``)."""
    ids = list(set(chat_ids))
    if not ids:
        return {}
    with db.connection() as con:
        rows = con.execute(
            "SELECT id, provider FROM chats WHERE list_contains($ids, id) AND provider IS NOT NULL",
            {"ids": ids},
        ).fetchall()
    return {chat: provider for chat, provider in rows}
