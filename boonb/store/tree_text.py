"""A trace tree as the REST endpoint's JSON, with each row's JSON made by DuckDB.

:meth:`TraceStore.tree` builds a tree of Python records, and turning 10,000 rows into
records is most of its cost (about 10 µs a row). The endpoint only sends the tree on,
so here DuckDB writes each row's JSON itself (in parallel, in C++), Python reads just
the id, parent and start of each row to nest them with the same projection
(:func:`boonb.store.projections.build_tree`), and the answer is joined as text. It
reads as the JSON of ``TraceStore.tree``: the same fields in the same order, timestamps
and large values cut as pydantic writes them (a test compares the two).
"""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

from boonb.store.cut import CUT_ABOVE_BYTES, PREVIEW_CHARS, cut_value
from boonb.store.projections import TraceTree, TreeNode, build_tree
from boonb.store.rows import TRACE_COLUMNS

_PAYLOADS = ("input", "output")
# pydantic writes an aware UTC datetime as ISO 8601 with a Z, and with no fraction
# when the microseconds are 0.
_TIMESTAMP = (
    "CASE WHEN epoch_us({c}) % 1000000 = 0 "
    "THEN strftime(timezone('UTC', {c}), '%Y-%m-%dT%H:%M:%SZ') "
    "ELSE strftime(timezone('UTC', {c}), '%Y-%m-%dT%H:%M:%S.%fZ') END"
)
# The cut fields come last in a page's trace, so a row with a large value has its tail
# replaced (rare: a page cuts values over 4 KB).
_NO_CUTS = ',"input_cut":null,"output_cut":null}'


def _field(column: str) -> str:
    if column in ("started_at", "finished_at"):
        return f"{column} := {_TIMESTAMP.format(c=column)}"
    if column in _PAYLOADS:
        large = f"strlen({column}) > {CUT_ABOVE_BYTES}"
        return f"{column} := CASE WHEN {large} THEN NULL ELSE {column} END"
    return f"{column} := {column}"


_FIELDS = ", ".join(_field(c) for c in TRACE_COLUMNS)
# As a page's query: a large value never leaves DuckDB whole, only its size and start.
_CUTS = ", ".join(
    f"CASE WHEN strlen({c}) > {CUT_ABOVE_BYTES} THEN strlen({c}) END, "
    f"CASE WHEN strlen({c}) > {CUT_ABOVE_BYTES} THEN left({c}, {2 * PREVIEW_CHARS}) END"
    for c in _PAYLOADS
)
_SELECT = (
    "SELECT id::VARCHAR, parent_id::VARCHAR, epoch_us(started_at), "
    f"to_json(struct_pack({_FIELDS}, input_cut := NULL, output_cut := NULL))::VARCHAR, "
    f"{_CUTS} FROM tool_traces WHERE root_id = ?"
)


class JsonRow(NamedTuple):
    """A row of a tree as the endpoint sends it: enough to nest it, and its JSON."""

    id: str
    parent_id: str | None
    started_at: int
    """Epoch microseconds: with the id (whose text sorts as the UUID does), the order of
    siblings, as for records."""
    json: str


def read_rows(con: Any, root: UUID) -> list[JsonRow]:
    """Every row of the tree ``root``, in no order: the tree orders siblings itself."""
    found: list[JsonRow] = []
    for trace_id, parent, started, text, in_size, in_head, out_size, out_head in con.execute(
        _SELECT, [root]
    ).fetchall():
        if in_size is not None or out_size is not None:
            text = (
                text[: -len(_NO_CUTS)]
                + f',"input_cut":{_cut_json(in_size, in_head)}'
                + f',"output_cut":{_cut_json(out_size, out_head)}}}'
            )
        found.append(JsonRow(trace_id, parent, started, text))
    return found


def _cut_json(size: int | None, head: str | None) -> str:
    return "null" if size is None or head is None else cut_value(size, head).model_dump_json()


def tree_json(
    rows: list[JsonRow],
    *,
    root_id: UUID,
    max_depth: int | None,
    max_nodes: int | None,
    subtree: UUID | None,
) -> bytes | None:
    """The tree of ``rows`` as the endpoint's JSON; None when ``subtree`` is not one of them."""
    try:
        tree = build_tree(
            rows,
            root_id=root_id,
            max_depth=max_depth,
            max_nodes=max_nodes,
            subtree=subtree,
            subtree_key=None if subtree is None else str(subtree),
        )
    except KeyError:
        return None
    return _tree_text(tree).encode()


def _tree_text(tree: TraceTree[JsonRow]) -> str:
    # Pieces joined once at the end: joining each level's children into a string would
    # copy the rows' text once per level above them.
    parts: list[str] = []
    subtree = "null" if tree.subtree is None else f'"{tree.subtree}"'
    parts.append(f'{{"root_id":"{tree.root_id}","subtree":{subtree},"nodes":[')
    _add_nodes(parts, tree.nodes)
    parts.append(f'],"total":{tree.total},"shown":{tree.shown}}}')
    return "".join(parts)


def _add_nodes(parts: list[str], nodes: list[TreeNode[JsonRow]]) -> None:
    # Recursion is as deep as the tree (a level per nested chat), far below Python's limit.
    for index, node in enumerate(nodes):
        parts.append(',{"trace":' if index else '{"trace":')
        parts.append(node.trace.json)
        parts.append(f',"depth":{node.depth},"children":[')
        _add_nodes(parts, node.children)
        parts.append(f'],"hidden_children":{node.hidden_children}}}')
