"""A batch of trace records as one Arrow table, the cheapest way from Python into DuckDB.

pyarrow converts each column in C, so the Python work per trace is a few attribute
reads and the JSON text of its input and output. DuckDB then inserts the table
without looking at a Python object again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any
from uuid import UUID

import pyarrow as pa
from pydantic_core import to_json

from boonb.frames import TraceRecord
from boonb.store.rows import TRACE_COLUMNS


def _ids(values: list[UUID]) -> pa.Array:
    return pa.array([value.bytes for value in values], pa.uuid())


def _repeated_ids(values: list[UUID | None]) -> pa.Array:
    """Session, chat and run ids repeat across a batch: convert each distinct one once."""
    seen: dict[UUID, bytes] = {}
    return pa.array(
        [
            None if value is None else seen.get(value) or seen.setdefault(value, value.bytes)
            for value in values
        ],
        pa.uuid(),
    )


def _json(values: list[Any]) -> pa.Array:
    # A Python string becomes a JSON string; anything JSON cannot hold becomes its str().
    return pa.array(
        [None if value is None else to_json(value, fallback=str) for value in values],
        pa.string(),
    )


def _of(arrow_type: pa.DataType) -> Callable[[list[Any]], pa.Array]:
    return lambda values: pa.array(values, arrow_type)


_CONVERT: dict[str, Callable[[list[Any]], pa.Array]] = {
    "id": _ids,
    "session_id": _repeated_ids,
    "chat_id": _repeated_ids,
    "workflow_run_id": _repeated_ids,
    "parent_id": _repeated_ids,
    "root_id": _repeated_ids,
    "input": _json,
    "output": _json,
    "started_at": _of(pa.timestamp("us", tz="UTC")),
    "finished_at": _of(pa.timestamp("us", tz="UTC")),
    "latency_ms": _of(pa.float64()),
    "cost_usd": _of(pa.float64()),
    "turn_number": _of(pa.int32()),
    **{
        name: _of(pa.int32())
        for name in TRACE_COLUMNS
        if name.endswith("_tokens") or name == "tokens_used"
    },
}
_STRINGS = _of(pa.string())
assert set(_CONVERT) <= set(TRACE_COLUMNS)


def trace_table(traces: Sequence[TraceRecord]) -> pa.Table:
    """The ``tool_traces`` rows of ``traces``, one Arrow column per table column.

    A record without a ``root_id`` is stored in its chat's tree (``root_id = chat_id``).
    """
    columns = {
        name: _CONVERT.get(name, _STRINGS)(list(map(attrgetter(name), traces)))
        for name in TRACE_COLUMNS
        if name != "root_id"
    }
    roots = [t.root_id or t.chat_id for t in traces]
    columns["root_id"] = _repeated_ids(roots)  # type: ignore[arg-type]
    return pa.table({name: columns[name] for name in TRACE_COLUMNS})
