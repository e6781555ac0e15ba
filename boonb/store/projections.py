"""Projections of trace rows: the tree of a root, the turns of a chat, a timeline.

Pure functions over rows already read (no SQL, no I/O), after ``inspect_ai``'s event
tree: the store reads rows once, and every view (the trace viewer, the chat view's
turn timeline, the REST tree endpoint, the static HTML) groups them here, so none of
them regroups rows by hand. See DESIGN section 3 for how rows form trees.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from boonb.frames import TraceRecord


class TreeRow(Protocol):
    """What a tree needs of a row: a record, or a lighter row that stands for one."""

    @property
    def id(self) -> Hashable: ...

    @property
    def parent_id(self) -> Hashable | None: ...

    @property
    def started_at(self) -> Any: ...


Row = TypeVar("Row", bound=TraceRecord)
R = TypeVar("R", bound=TreeRow)


@dataclass(slots=True)
class TreeNode(Generic[R]):
    """One row of a tree, with the rows that hang under it."""

    trace: R
    depth: int
    """0 for a row at the top of the tree (or of the subtree asked for)."""
    children: list[TreeNode[R]] = field(default_factory=list)
    hidden_children: int = 0
    """Children left out by a depth or size cap; ask for ``subtree=<this id>`` to see them."""


@dataclass(slots=True, kw_only=True)
class TraceTree(Generic[R]):
    """The rows of one root as a tree (or one branch of it), capped in depth and size."""

    root_id: UUID
    subtree: UUID | None
    """The row whose branch this is; None for the whole tree."""
    nodes: list[TreeNode[R]]
    """The top rows: the ``workflow`` row of a run, a chat's model calls, or the subtree's row."""
    total: int
    """Rows in the tree (or the branch), shown or not."""
    shown: int
    """Rows in ``nodes`` and under them; fewer than ``total`` when a cap cut the tree."""


_order = attrgetter("started_at", "id")


def children_of(rows: Iterable[R]) -> dict[Hashable | None, list[R]]:
    """Rows by parent, each list in start order.

    A row whose parent is not among ``rows`` (a chat's model calls, whose root is the
    chat) is under None, at the top.
    """
    ordered = sorted(rows, key=_order)
    known = {row.id for row in ordered}
    children: dict[Hashable | None, list[R]] = {}
    for row in ordered:
        parent = row.parent_id if row.parent_id in known else None
        siblings = children.get(parent)
        if siblings is None:
            children[parent] = [row]
        else:
            siblings.append(row)
    return children


def build_tree(
    rows: Sequence[R],
    *,
    root_id: UUID,
    max_depth: int | None = None,
    max_nodes: int | None = None,
    subtree: UUID | None = None,
    subtree_key: Hashable | None = None,
) -> TraceTree[R]:
    """The tree of ``rows`` (all of one root), or the branch under ``subtree``.

    Rows are taken level by level, so a size cap keeps the top of the tree and cuts its
    deepest, latest rows; a node whose children were cut says how many in
    ``hidden_children``. ``max_depth`` 0 keeps only the top rows. Raises ``KeyError`` for
    a ``subtree`` that is not one of ``rows``. Rows whose ids are not UUIDs (the store's
    light rows, ids as text) give the subtree's id as they hold it in ``subtree_key``.
    """
    children = children_of(rows)
    if subtree is not None:
        key = subtree if subtree_key is None else subtree_key
        found = next((row for row in rows if row.id == key), None)
        if found is None:
            raise KeyError(subtree)
        top = [found]
        total = _count_under(children, key) + 1
    else:
        top = children.get(None, [])
        total = len(rows)
    budget = total if max_nodes is None else max(0, max_nodes)
    # Nodes are made by position (a tree's main cost is one node per row), a level at a
    # time: each node of a level makes its children's nodes while room is left.
    nodes = [TreeNode(row, 0, [], 0) for row in top[:budget]]
    shown, depth, level = len(nodes), 0, nodes
    while level:
        below: list[TreeNode[R]] = []
        for node in level:
            kids = children.get(node.trace.id)
            if not kids:
                continue
            room = 0 if max_depth is not None and depth >= max_depth else budget - shown
            if room <= 0:
                node.hidden_children = len(kids)
                continue
            made = [TreeNode(kid, depth + 1, [], 0) for kid in kids[:room]]
            node.children = made
            node.hidden_children = len(kids) - len(made)
            below += made
            shown += len(made)
        level = below
        depth += 1
    return TraceTree(root_id=root_id, subtree=subtree, nodes=nodes, total=total, shown=shown)


def _count_under(children: dict[Hashable | None, list[R]], trace_id: Hashable) -> int:
    count, stack = 0, [trace_id]
    while stack:
        kids = children.get(stack.pop(), ())
        count += len(kids)
        stack.extend(kid.id for kid in kids)
    return count


def chat_branch(rows: Sequence[Row], chat_id: UUID) -> list[Row]:
    """The rows of one chat of a tree and every row under them (the chats it started)."""
    children = children_of(rows)
    kept: list[Row] = []
    stack = [row for row in reversed(rows) if row.chat_id == chat_id]
    seen: set[UUID] = set()
    while stack:
        row = stack.pop()
        if row.id in seen:
            continue
        seen.add(row.id)
        kept.append(row)
        stack.extend(children.get(row.id, ()))
    return kept


def walk(nodes: Iterable[TreeNode[R]]) -> Iterable[TreeNode[R]]:
    """Every node of a tree, depth first, in the order a nested list shows them."""
    stack = list(reversed(list(nodes)))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


@dataclass(slots=True, kw_only=True)
class TurnTotals:
    """One turn of a chat: its model call(s) and the tool calls they asked for.

    Token counts follow the project's convention and come from the model calls only (a
    tool call carries none): ``input_tokens`` includes the cache-read ``cache_tokens``;
    ``tokens_used = input_tokens + output_tokens``.
    """

    turn_number: int
    started_at: datetime
    """When the turn's first call started."""
    finished_at: datetime | None
    """When its last call ended; None while none has."""
    model_calls: int = 0
    tool_calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    cache_tokens: int = 0
    output_tokens: int = 0
    tokens_used: int = 0
    latency_ms: float = 0.0
    """The calls' latencies added up (tool calls of a turn run at once, so this can exceed
    the turn's wall time)."""


def turns(rows: Iterable[TraceRecord]) -> list[TurnTotals]:
    """The turns of a chat's rows, in turn order (rows of other kinds are left out)."""
    found: dict[int, TurnTotals] = {}
    for row in rows:
        if row.kind not in ("model", "tool"):
            continue
        turn = found.get(row.turn_number)
        if turn is None:
            turn = found[row.turn_number] = TurnTotals(
                turn_number=row.turn_number, started_at=row.started_at, finished_at=None
            )
        turn.started_at = min(turn.started_at, row.started_at)
        if row.finished_at is not None and (
            turn.finished_at is None or row.finished_at > turn.finished_at
        ):
            turn.finished_at = row.finished_at
        turn.errors += row.outcome == "error"
        turn.latency_ms += row.latency_ms or 0.0
        if row.kind == "tool":
            turn.tool_calls += 1
            continue
        turn.model_calls += 1
        turn.input_tokens += row.input_tokens
        turn.cache_tokens += row.cache_tokens
        turn.output_tokens += row.output_tokens
        turn.tokens_used += row.tokens_used
    return [found[number] for number in sorted(found)]


@dataclass(slots=True, kw_only=True)
class TimelineEntry:
    """Where one row sits on a waterfall: its start and length relative to its tree's start."""

    id: UUID
    parent_id: UUID | None
    kind: str
    name: str
    offset_ms: float
    """Milliseconds from the earliest start among the rows to this row's start."""
    duration_ms: float | None
    """Its latency (or end minus start); None while it runs."""


def timeline(rows: Iterable[TraceRecord]) -> list[TimelineEntry]:
    """The rows on a waterfall, in start order, relative to the first start."""
    ordered = sorted(rows, key=_order)
    if not ordered:
        return []
    origin = ordered[0].started_at
    return [
        TimelineEntry(
            id=row.id,
            parent_id=row.parent_id,
            kind=row.kind,
            name=row.tool_name,
            offset_ms=(row.started_at - origin).total_seconds() * 1000,
            duration_ms=_duration(row),
        )
        for row in ordered
    ]


def _duration(row: TraceRecord) -> float | None:
    if row.latency_ms is not None:
        return row.latency_ms
    if row.finished_at is None:
        return None
    return (row.finished_at - row.started_at).total_seconds() * 1000
