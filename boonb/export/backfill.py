"""Backfill: send what the project database already holds, as the live export sent it.

The same rows give the same spans (:func:`boonb.export.spans.span_of`): ids, names,
attributes and the original timestamps. A tree is sent whole, so a backend gets its
spans with their parents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from boonb.export.agents import AgentChats
from boonb.export.errors import InvalidExportScope
from boonb.export.live import SpanSender, span_options
from boonb.export.spans import SpanData, SpanOptions, span_of
from boonb.export.target import ExportTarget
from boonb.frames import TraceRecord
from boonb.store import Database
from boonb.store.export_rows import (
    cache_segments,
    chat_providers,
    chat_records,
    roots,
    scope_of,
    tree_records,
)

ALL = "all"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What a backfill sent: spans accepted by the endpoint, and spans it did not accept."""

    endpoint: str
    traces: int
    spans_sent: int
    spans_dropped: int

    def __str__(self) -> str:
        return f"{self.spans_sent} spans of {self.traces} traces sent to {self.endpoint}" + (
            f"; {self.spans_dropped} dropped (not accepted)" if self.spans_dropped else ""
        )


def backfill(
    db: Database, scope: UUID | str, target: ExportTarget, sender: SpanSender
) -> ExportSummary:
    """Send a chat (and what hangs under it), a workflow run, or ``"all"`` of the project.

    A tree of which the endpoint accepts nothing stops the backfill: the rest is counted
    as dropped rather than sent to an endpoint that is down, batch after batch, each with
    its timeout. A tree it accepts in part (a batch refused, say too large) does not.
    """
    options = span_options(target)
    sent = dropped = traces = 0
    down = False
    for records in _trees(db, scope):
        traces += 1
        spans = list(_spans(db, records, options))
        if down:
            dropped += len(spans)
            continue
        accepted = sender.send(spans)
        sent += accepted
        dropped += len(spans) - accepted
        down = bool(spans) and accepted == 0
    return ExportSummary(
        endpoint=target.describe(), traces=traces, spans_sent=sent, spans_dropped=dropped
    )


def _trees(db: Database, scope: UUID | str) -> Iterable[list[TraceRecord]]:
    if isinstance(scope, str) and scope.strip().lower() == ALL:
        for root in roots(db):
            yield tree_records(db, root)
        return
    found = _parse_id(scope)
    kind = scope_of(db, found)
    if kind is None:
        raise InvalidExportScope(
            f"no chat or workflow run {found} has traces in {db.path}; check the id "
            "(boonb.sessions() lists chats, %workflow runs lists runs), or pass 'all'"
        )
    yield tree_records(db, found) if kind == "tree" else chat_records(db, found)


def _parse_id(scope: UUID | str) -> UUID:
    if isinstance(scope, UUID):
        return scope
    try:
        return UUID(scope.strip())
    except ValueError:
        raise InvalidExportScope(
            f"export_otel takes a chat id, a workflow run id or 'all', got {scope!r}"
        ) from None


def _spans(db: Database, records: list[TraceRecord], options: SpanOptions) -> Iterable[SpanData]:
    models = [r for r in records if r.kind == "model"]
    cache = cache_segments(db, (r.id for r in models))
    providers = chat_providers(db, (r.chat_id for r in models))
    agent_chats = AgentChats(limit=len(models) + 1)  # the whole tree's, as live saw them
    for record in models:
        agent_chats.saw_model_call(record, providers.get(record.chat_id))
    for record in records:
        if record.kind == "model":
            yield span_of(
                record,
                cache=cache.get(record.id, ()),
                provider=providers.get(record.chat_id),
                options=options,
            )
        elif record.kind == "agent":
            chat, provider = agent_chats.of_agent(record)
            yield span_of(record, provider=provider, conversation=chat, options=options)
        else:
            yield span_of(record, options=options)
