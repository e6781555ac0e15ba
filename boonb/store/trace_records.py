"""Trace rows read back as records: the SELECT lists, and decoding (large payloads cut).

A page must stay small whatever the tools returned, so an input or output whose JSON
text is longer than :data:`~boonb.store.cut.CUT_ABOVE_BYTES` is selected as its size and
start and comes as a :class:`~boonb.store.cut.CutValue` preview in a :class:`PagedTrace`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic_core import from_json

from boonb.frames import TraceRecord
from boonb.store.cut import CUT_ABOVE_BYTES, PREVIEW_CHARS, CutValue, cut_value
from boonb.store.rows import TRACE_COLUMNS

_PAYLOADS = ("input", "output")
# Pages know their chat, so they do not read it back; timestamps come as epoch
# microseconds, which Python turns into datetimes far faster than DuckDB's own conversion.
_COLUMNS = tuple(c for c in TRACE_COLUMNS if c != "chat_id")


def _selected(column: str) -> str:
    if column in ("started_at", "finished_at"):
        return f"epoch_us({column})"
    if column in _PAYLOADS:
        # A large value never leaves DuckDB whole: its size and start stand in for it.
        # Twice the preview, so a JSON string's escapes (two characters or more for one)
        # still leave a whole preview of its text.
        large = f"strlen({column}) > {CUT_ABOVE_BYTES}"
        return (
            f"CASE WHEN {large} THEN NULL ELSE {column} END, "
            f"CASE WHEN {large} THEN strlen({column}) END, "
            f"CASE WHEN {large} THEN left({column}, {2 * PREVIEW_CHARS}) END"
        )
    return column


SELECT_PAGE = ", ".join(_selected(c) for c in _COLUMNS)
# A tree spans chats, so its rows carry theirs. A tree is read by column (through Arrow,
# twice as fast as row tuples for 10,000 rows), and its ids come as text: DuckDB makes a
# UUID object per cell (six a row), where most of a tree's ids repeat (its root, session,
# chats, and each parent, already read as an earlier row's id) and are made once from text.
_UUIDS = frozenset({"id", "session_id", "chat_id", "workflow_run_id", "parent_id", "root_id"})
SELECT_TREE = ", ".join(f"{c}::VARCHAR" if c in _UUIDS else _selected(c) for c in TRACE_COLUMNS)
# For projections that need no payloads (turn totals): the rest of every column.
SELECT_CALLS = ", ".join(
    "NULL" if c in _PAYLOADS else f"epoch_us({c})" if c.endswith("_at") else c
    for c in TRACE_COLUMNS
)
SELECT_WHOLE = ", ".join(
    f"epoch_us({c})" if c in ("started_at", "finished_at") else c for c in TRACE_COLUMNS
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True, kw_only=True)
class PagedTrace(TraceRecord):
    """A trace as a page carries it: a large input or output is cut to a preview.

    When ``input_cut`` (or ``output_cut``) is set, ``input`` (``output``) is None and the
    whole value is had from :meth:`boonb.store.TraceStore.detail`.
    """

    input_cut: CutValue | None = None
    output_cut: CutValue | None = None


def paged_trace(row: tuple[Any, ...], chat: UUID | None) -> PagedTrace:
    """A page's row as a trace; a large input or output comes as its size and start.

    A page of one chat reads every column but the chat's id (``chat``); without ``chat``,
    the row carries every column.
    """
    values: dict[str, Any] = {} if chat is None else {"chat_id": chat}
    cells = iter(row)
    for column in _COLUMNS if chat is not None else TRACE_COLUMNS:
        values[column] = next(cells)
        if column in _PAYLOADS:
            size, head = next(cells), next(cells)
            if size is not None:
                values[f"{column}_cut"] = cut_value(size, head)
    return PagedTrace(**_decoded(values))


class _Ids(dict[str | None, UUID | None]):
    """UUIDs by their text, each made once, on first lookup (None stays None)."""

    def __missing__(self, text: str | None) -> UUID | None:
        found = self[text] = None if text is None else UUID(text)
        return found


def paged_by_column(cells: list[list[Any]]) -> list[PagedTrace]:
    """Traces from the columns of ``SELECT_TREE``, converted a column at a time."""
    ids = _Ids()

    converted: list[list[Any]] = []
    columns = iter(cells)
    for column in TRACE_COLUMNS:
        values = next(columns)
        if column in _UUIDS:
            converted.append([ids[v] for v in values])
        elif column in ("started_at", "finished_at"):
            converted.append(
                [None if v is None else _EPOCH + timedelta(microseconds=v) for v in values]
            )
        elif column in _PAYLOADS:
            sizes, heads = next(columns), next(columns)
            converted.append([None if v is None else from_json(v) for v in values])
            converted.append(
                [None if n is None else cut_value(n, h) for n, h in zip(sizes, heads, strict=True)]
            )
        else:
            converted.append(values)
    return list(map(_build_paged, *converted))


def _positional_builder(cls: type[PagedTrace], names: list[str]) -> Any:
    """A function building ``cls`` from its fields given in ``names`` order, by position.

    Building 10,000 traces of 27 fields is a tree's main cost: a call by position binds
    its arguments directly, where keywords (or ``**values``) pass through a dict first.
    """
    assert set(names) == {f.name for f in fields(cls)}, "every field, once"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = [f"self.{name} = {name}" for name in names]
    lines = [f"def build({', '.join(names)}):", "self = _new(_cls)", *body, "return self"]
    exec("\n    ".join(lines), namespace)  # as dataclasses builds __init__
    return namespace["build"]


_build_paged = _positional_builder(
    PagedTrace,
    [
        name
        for column in TRACE_COLUMNS
        for name in ((column, f"{column}_cut") if column in _PAYLOADS else (column,))
    ],
)


def record_of(values: dict[str, Any]) -> TraceRecord:
    """The record of one stored row, given as ``{column: value}`` (selected by SELECT_WHOLE)."""
    return TraceRecord(**_decoded(values))


def _decoded(values: dict[str, Any]) -> dict[str, Any]:
    """Stored values as record fields; the table's column types already hold the rest."""
    for column in ("started_at", "finished_at"):
        if values[column] is not None:
            values[column] = _EPOCH + timedelta(microseconds=values[column])
    for column in _PAYLOADS:
        if values[column] is not None:
            values[column] = from_json(values[column])
    return values
