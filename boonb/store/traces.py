"""Trace queries: keyset pages of a chat's traces, one trace in full, and aggregates.

A page must stay small whatever the tools returned, so an input or output whose JSON
text is longer than :data:`CUT_ABOVE_BYTES` comes in a page as a :class:`CutValue`
preview (:mod:`boonb.store.trace_records` reads rows so); :meth:`TraceStore.detail`
returns the whole trace.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic_core import from_json

from boonb.frames import CacheSegment, TraceRecord
from boonb.store import tree_text
from boonb.store.cursor import TraceKey, decode_cursor, encode_cursor
from boonb.store.cut import CUT_ABOVE_BYTES, PREVIEW_CHARS, CutValue
from boonb.store.database import Database
from boonb.store.errors import (
    InvalidChatId,
    InvalidLimit,
    InvalidQuery,
    InvalidSessionId,
    InvalidTraceId,
)
from boonb.store.projections import TraceTree, build_tree, chat_branch, turns
from boonb.store.requests import SentRequest, StoredMessage, StoredPart, sent_request
from boonb.store.rows import TRACE_COLUMNS
from boonb.store.trace_aggregates import (
    CACHE_BREAKS_SQL,
    CHAT_TOTALS_SQL,
    SUMMARY_SQL,
    CacheBreak,
    ChatHighlights,
    ChatTotals,
    FailedCall,
    SessionSummary,
    SlowCall,
    TurnCache,
)
from boonb.store.trace_records import (
    SELECT_CALLS,
    SELECT_PAGE,
    SELECT_TREE,
    SELECT_WHOLE,
    PagedTrace,
    paged_by_column,
    paged_trace,
    record_of,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

_ORDER = "turn_number, started_at, id"
# Turns read per query when paging a whole chat, before a last query for the rest. A
# bounded turn range lets DuckDB skip every row group outside it by its min/max
# statistics, where an open-ended ORDER BY ... LIMIT reads and sorts the whole chat
# (15 ms at a million traces, against 6 ms). Most pages fit in the first span.
_TURN_SPANS = (8, 64)


class TracePage(BaseModel):
    """One page of traces in (turn_number, started_at, id) order."""

    traces: list[PagedTrace]
    next_cursor: str | None
    """Pass back to get the next page; None on the last page."""


class TraceDetail(BaseModel):
    """One trace in full; for a model call, also the request as it was sent."""

    trace: TraceRecord
    request: SentRequest | None
    """A model call's request rebuilt from the stored chat; None for a tool call."""


class TraceStore:
    """Read-only queries over the project's traces: pages, details, cache and totals.

    ``page(chat_id, cursor, limit)`` pages a chat's traces; ``detail`` gives one whole
    trace; ``turn_cache``, ``chat_totals`` and ``cache_breaks`` feed the views. Every
    query validates its ids and raises an ``InvalidQuery`` for bad ones.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self,
        chat_id: UUID | str,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
        turn_number: int | None = None,
    ) -> TracePage:
        """A page of a chat's traces, optionally of one turn, after ``cursor``."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        limit = _check_limit(limit)
        if turn_number is not None and (
            not isinstance(turn_number, int) or isinstance(turn_number, bool) or turn_number < 0
        ):
            raise InvalidQuery(f"turn_number must be a non-negative integer, got {turn_number!r}")
        scope = f"{chat}:{turn_number}"
        key = None
        if cursor is not None:
            key = decode_cursor(cursor, scope=scope, secret=self.db.cursor_key)
        with self.db.connection() as con:
            rows = _page_rows(con, chat, turn_number, key, limit + 1)
        traces = [paged_trace(row, chat) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = traces[-1]
            next_cursor = encode_cursor(
                TraceKey(last.turn_number, last.started_at, last.id),
                scope=scope,
                secret=self.db.cursor_key,
            )
        return TracePage(traces=traces, next_cursor=next_cursor)

    def detail(self, trace_id: UUID | str, *, chat_id: UUID | None = None) -> TraceDetail | None:
        """One trace with its whole input and output (None if unknown, or not in ``chat_id``).

        A model call also gets the request as it was sent: the system prompt and tool
        schemas it recorded (or an earlier call of the chat recorded, when unchanged since),
        and the chat's stored messages up to the call's ``message_count``.
        """
        trace_uuid = parse_uuid(trace_id, InvalidTraceId, "trace id")
        with self.db.connection() as con:
            row = con.execute(
                f"SELECT {SELECT_WHOLE} FROM tool_traces WHERE id = ?", [trace_uuid]
            ).fetchone()
            if row is None:
                return None
            trace = record_of(dict(zip(TRACE_COLUMNS, row, strict=True)))
            if chat_id is not None and trace.chat_id != chat_id:
                return None
            request = None
            if trace.kind == "model" and isinstance(trace.input, dict):
                request = self._sent_request(con, trace, trace.input)
        return TraceDetail(trace=trace, request=request)

    def _sent_request(self, con: Any, trace: TraceRecord, call: dict[str, Any]) -> SentRequest:
        count = call.get("message_count")
        wanted = count - 1 if isinstance(count, int) and count > 0 else 0  # the system prompt
        context: Any = None
        if "tool_schemas" in call:
            context = call
        else:
            found = con.execute(
                f"SELECT input FROM tool_traces WHERE chat_id = ? AND kind = 'model' "
                f"AND json_exists(input, '$.tool_schemas') AND ({_ORDER}) < (?, ?, ?) "
                f"ORDER BY {_ORDER} DESC LIMIT 1",
                [trace.chat_id, trace.turn_number, trace.started_at, trace.id],
            ).fetchone()
            context = from_json(found[0]) if found else None
        rows = con.execute(_MESSAGES_SQL, [trace.chat_id, wanted]).fetchall()
        messages: list[StoredMessage] = []
        for message_id, role, position, type_, text, url, mime, size, data, sha256 in rows:
            if not messages or messages[-1].id != message_id:
                messages.append(StoredMessage(id=message_id, role=role))
            if position is not None:
                value = from_json(data) if data is not None else None
                messages[-1].parts.append(StoredPart(type_, text, url, mime, size, value, sha256))
        return sent_request(call, context if isinstance(context, dict) else None, messages)

    def cache_breaks(self, chat_id: UUID | str) -> list[CacheBreak]:
        """Each turn where a segment sent before had changed, naming the first such segment."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            rows = con.execute(CACHE_BREAKS_SQL, [chat]).fetchall()
        return [CacheBreak(turn_number=t, segment=s, hit_tokens=h, tokens=n) for t, s, h, n in rows]

    def turn_cache(self, chat_id: UUID | str) -> list[TurnCache]:
        """Per turn of a chat: cached against uncached prompt tokens, and by segment."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        calls = self.chat_calls(chat)
        with self.db.connection() as con:
            segment_rows = con.execute(
                "SELECT turn_number, segment, sum(tokens), sum(hit_tokens), sum(miss_tokens), "
                "last(hash ORDER BY trace_id), last(prefix_hash ORDER BY trace_id) "
                "FROM cache_stats WHERE chat_id = ? GROUP BY turn_number, segment "
                "ORDER BY turn_number, "
                "list_position(['system', 'tools', 'history', 'attachments'], segment)",
                [chat],
            ).fetchall()
            breaks = con.execute(CACHE_BREAKS_SQL, [chat]).fetchall()
        segments: dict[int, list[CacheSegment]] = {}
        for turn, segment, tokens, hit, miss, hash_, prefix in segment_rows:
            segments.setdefault(turn, []).append(
                CacheSegment(
                    segment=segment,
                    tokens=tokens,
                    hit_tokens=hit,
                    miss_tokens=miss,
                    hash=hash_,
                    prefix_hash=prefix,
                )
            )
        broken = {turn: segment for turn, segment, *_ in breaks}
        return [
            TurnCache(
                turn_number=turn.turn_number,
                input_tokens=turn.input_tokens,
                cache_tokens=turn.cache_tokens,
                segments=segments.get(turn.turn_number, []),
                broken_by=broken.get(turn.turn_number),
            )
            for turn in turns(calls)
            if turn.model_calls  # a turn's cache figures are its model calls'
        ]

    def chat_totals(self, chat_id: UUID | str) -> ChatTotals:
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            row = con.execute(CHAT_TOTALS_SQL, [chat]).fetchone()
        assert row is not None
        names = list(ChatTotals.model_fields)
        return ChatTotals(**dict(zip(names, row, strict=True)))

    def chat_highlights(
        self, chat_id: UUID | str, *, slowest: int = 3, errors: int = 3
    ) -> ChatHighlights:
        """The chat's turn count, its ``slowest`` slowest calls and its first ``errors`` errors."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            turns = con.execute(
                "SELECT count(DISTINCT turn_number) FROM tool_traces WHERE chat_id = ?", [chat]
            ).fetchone()
            slow_rows = con.execute(
                "SELECT tool_name, kind, turn_number, latency_ms FROM tool_traces "
                "WHERE chat_id = ? AND latency_ms IS NOT NULL "
                f"ORDER BY latency_ms DESC, {_ORDER} LIMIT ?",
                [chat, slowest],
            ).fetchall()
            error_rows = con.execute(
                "SELECT tool_name, turn_number, error FROM tool_traces "
                f"WHERE chat_id = ? AND outcome = 'error' ORDER BY {_ORDER} LIMIT ?",
                [chat, errors],
            ).fetchall()
        return ChatHighlights(
            turns=turns[0] if turns else 0,
            slowest=[
                SlowCall(tool_name=n, kind=k, turn_number=t, latency_ms=ms)
                for n, k, t, ms in slow_rows
            ],
            errors=[
                FailedCall(tool_name=n, turn_number=t, error=e or "") for n, t, e in error_rows
            ],
        )

    def chat_calls(self, chat_id: UUID | str) -> list[TraceRecord]:
        """Every row of a chat in page order, without inputs and outputs (for projections)."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            rows = con.execute(
                f"SELECT {SELECT_CALLS} FROM tool_traces WHERE chat_id = ? ORDER BY {_ORDER}",
                [chat],
            ).fetchall()
        return [record_of(dict(zip(TRACE_COLUMNS, row, strict=True))) for row in rows]

    def root_rows(self, root_id: UUID | str) -> list[PagedTrace]:
        """Every row of one tree in start order, large inputs and outputs cut as in a page."""
        root = parse_uuid(root_id, InvalidTraceId, "root id")
        with self.db.connection() as con:
            # A cursor of its own: a relation refuses to run on a connection whose last
            # result was not read to its end (an earlier fetchone of another query).
            with con.cursor() as cursor:
                table = cursor.sql(
                    f"SELECT {SELECT_TREE} FROM tool_traces WHERE root_id = $root "
                    "ORDER BY started_at, id",
                    params={"root": root},
                ).to_arrow_table()
        return paged_by_column([column.to_pylist() for column in table.columns])

    def tree(
        self,
        root_id: UUID | str,
        *,
        max_depth: int | None = None,
        max_nodes: int | None = None,
        subtree: UUID | str | None = None,
    ) -> TraceTree | None:
        """The tree of ``root_id`` (a chat's id, or a workflow run's), or its ``subtree`` branch.

        None when the tree has no rows or ``subtree`` is not one of them. See
        :func:`boonb.store.projections.build_tree` for the caps.
        """
        root = parse_uuid(root_id, InvalidTraceId, "root id")
        branch = None if subtree is None else parse_uuid(subtree, InvalidTraceId, "subtree")
        rows = self.root_rows(root)
        if not rows:
            return None
        try:
            return build_tree(
                rows, root_id=root, max_depth=max_depth, max_nodes=max_nodes, subtree=branch
            )
        except KeyError:
            return None

    def tree_json(
        self,
        root_id: UUID | str,
        *,
        max_depth: int | None = None,
        max_nodes: int | None = None,
        subtree: UUID | str | None = None,
    ) -> bytes | None:
        """:meth:`tree` as JSON (the REST endpoint's answer), without a record per row.

        See :mod:`boonb.store.tree_text`; None as for :meth:`tree`.
        """
        root = parse_uuid(root_id, InvalidTraceId, "root id")
        branch = None if subtree is None else parse_uuid(subtree, InvalidTraceId, "subtree")
        with self.db.connection() as con:
            rows = tree_text.read_rows(con, root)
        if not rows:
            return None
        return tree_text.tree_json(
            rows, root_id=root, max_depth=max_depth, max_nodes=max_nodes, subtree=branch
        )

    def chat_tree(self, chat_id: UUID | str, *, max_nodes: int | None = None) -> TraceTree | None:
        """A chat's calls nested, tool calls under the model call that asked for them.

        The chats its tool calls started hang under those calls. None for a chat without
        traces.
        """
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            found = con.execute(
                "SELECT root_id FROM tool_traces WHERE chat_id = ? LIMIT 1", [chat]
            ).fetchone()
        if found is None:
            return None
        root: UUID = found[0]
        if root == chat:  # the chat is its own tree
            return self.tree(chat, max_nodes=max_nodes)
        rows = chat_branch(self.root_rows(root), chat)
        return build_tree(rows, root_id=root, max_nodes=max_nodes)

    def chat_exists(self, chat_id: UUID | str) -> bool:
        """Whether the chat has a row in ``chats`` or any trace."""
        chat = parse_uuid(chat_id, InvalidChatId, "chat id")
        with self.db.connection() as con:
            row = con.execute(
                "SELECT EXISTS (SELECT 1 FROM chats WHERE id = ?) "
                "OR EXISTS (SELECT 1 FROM tool_traces WHERE chat_id = ?)",
                [chat, chat],
            ).fetchone()
        return bool(row and row[0])

    def session_summary(self, session_id: UUID | str) -> SessionSummary:
        session = parse_uuid(session_id, InvalidSessionId, "session id")
        with self.db.connection() as con:
            row = con.execute(SUMMARY_SQL, [session]).fetchone()
        assert row is not None
        names = [
            "chats", "traces", "model_calls", "tool_calls", "errors", "total_latency_ms",
            "mean_tool_latency_ms", "p95_latency_ms", "input_tokens", "output_tokens",
            "cache_tokens", "reasoning_tokens", "tokens_used", "cost_usd",
        ]  # fmt: skip
        values = dict(zip(names, row, strict=True))
        input_tokens = values["input_tokens"]
        return SessionSummary(
            session_id=session,
            cache_hit_rate=values["cache_tokens"] / input_tokens if input_tokens else None,
            **values,
        )


_MESSAGES_SQL = """
WITH sent AS (
    SELECT id, role, created_at FROM messages WHERE chat_id = ?
    ORDER BY created_at, id LIMIT ?
)
SELECT sent.id, sent.role, p.position, p.type, p.text, p.url, p.mime, p.size_bytes, p.data,
    p.sha256
FROM sent LEFT JOIN message_parts p ON p.message_id = sent.id
ORDER BY sent.created_at, sent.id, p.position
"""


def parse_uuid(value: UUID | str, error: type[InvalidQuery], what: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise error(f"{what} must be a UUID, got {value!r}") from None


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidLimit(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def _page_rows(
    con: Any, chat: UUID, turn_number: int | None, after: TraceKey | None, count: int
) -> list[tuple[Any, ...]]:
    """Up to ``count`` rows of the chat (or of one turn) in page order, after ``after``."""
    keyset = f" AND ({_ORDER}) > (?, ?, ?)" if after else ""
    keys = [after.turn_number, after.started_at, after.id] if after else []

    def query(turns: str, bounds: list[int], limit: int) -> list[tuple[Any, ...]]:
        sql = (
            f"SELECT {SELECT_PAGE} FROM tool_traces WHERE chat_id = ? AND {turns}{keyset} "
            f"ORDER BY {_ORDER} LIMIT {limit}"
        )
        rows: list[tuple[Any, ...]] = con.execute(sql, [chat, *bounds, *keys]).fetchall()
        return rows

    if turn_number is not None:
        return query("turn_number = ?", [turn_number], count)
    rows: list[tuple[Any, ...]] = []
    low = after.turn_number if after else 0
    for span in _TURN_SPANS:
        rows += query("turn_number BETWEEN ? AND ?", [low, low + span - 1], count - len(rows))
        if len(rows) == count:
            return rows
        low += span
    return rows + query("turn_number >= ?", [low], count - len(rows))


__all__ = [
    "CUT_ABOVE_BYTES",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PREVIEW_CHARS",
    "SELECT_WHOLE",
    "CacheBreak",
    "ChatHighlights",
    "ChatTotals",
    "CutValue",
    "FailedCall",
    "PagedTrace",
    "SessionSummary",
    "SlowCall",
    "TraceDetail",
    "TracePage",
    "TraceStore",
    "TurnCache",
    "parse_uuid",
    "record_of",
]
