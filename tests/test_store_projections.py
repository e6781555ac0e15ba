"""Projections over rows: trees with caps, turns of a chat, a timeline."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from boonb.frames import TraceRecord
from boonb.store import Store
from boonb.store.projections import build_tree, timeline, turns, walk
from tests.conftest import make_trace

ROOT = uuid.uuid4()


def _row(kind: str, parent: TraceRecord | None, at: float, **fields: object) -> TraceRecord:
    return make_trace(
        chat_id=ROOT,
        kind=kind,
        seconds=at,
        parent_id=parent.id if parent else None,
        root_id=ROOT,
        **fields,
    )


def _run() -> list[TraceRecord]:
    """workflow > 2 phases > 2 agents each > a model call > 2 tool calls (19 rows)."""
    run = _row("workflow", None, 0)
    rows = [run]
    for p in range(2):
        phase = _row("phase", run, 1 + p * 10)
        rows.append(phase)
        for a in range(2):
            agent = _row("agent", phase, 2 + p * 10 + a)
            model = _row("model", agent, 2.1 + p * 10 + a)
            tools = [_row("tool", model, 2.2 + p * 10 + a + t / 100) for t in range(2)]
            rows += [agent, model, *tools]
    return rows


def test_tree_nests_rows_under_their_parents_in_start_order() -> None:
    rows = _run()
    tree = build_tree(list(reversed(rows)), root_id=ROOT)
    assert tree.total == tree.shown == 19
    (top,) = tree.nodes
    assert top.trace.kind == "workflow" and top.depth == 0
    assert [n.trace.kind for n in top.children] == ["phase", "phase"]
    assert [n.trace.id for n in walk(tree.nodes)] == [r.id for r in rows]
    assert max(n.depth for n in walk(tree.nodes)) == 4


def test_a_size_cap_keeps_the_top_levels_and_counts_what_it_hid() -> None:
    tree = build_tree(_run(), root_id=ROOT, max_nodes=7)
    assert tree.shown == 7 and tree.total == 19
    kinds = [n.trace.kind for n in walk(tree.nodes)]
    assert kinds.count("agent") == 4 and "model" not in kinds
    agents = [n for n in walk(tree.nodes) if n.trace.kind == "agent"]
    assert all(a.hidden_children == 1 and a.children == [] for a in agents)


def test_a_depth_cap_hides_children_below_it() -> None:
    tree = build_tree(_run(), root_id=ROOT, max_depth=0)
    (top,) = tree.nodes
    assert top.children == [] and top.hidden_children == 2 and tree.shown == 1


def test_a_subtree_is_its_branch_only_and_an_unknown_one_is_a_key_error() -> None:
    rows = _run()
    phase = rows[1]
    tree = build_tree(rows, root_id=ROOT, subtree=phase.id)
    ids = {n.trace.id for n in walk(tree.nodes)}
    assert tree.total == tree.shown == 1 + 2 * 4 and phase.id in ids
    assert rows[0].id not in ids and not ids & {r.id for r in rows[11:]}
    with pytest.raises(KeyError):
        build_tree(rows, root_id=ROOT, subtree=uuid.uuid4())


def test_rows_whose_parent_is_not_in_the_tree_are_at_the_top() -> None:
    chat = uuid.uuid4()
    model = make_trace(chat_id=chat, kind="model", seconds=0)
    tool = make_trace(chat_id=chat, kind="tool", seconds=1, parent_id=model.id)
    stray = make_trace(chat_id=chat, kind="model", seconds=2, parent_id=uuid.uuid4())
    tree = build_tree([tool, stray, model], root_id=chat)
    assert [n.trace.id for n in tree.nodes] == [model.id, stray.id]
    assert [n.trace.id for n in tree.nodes[0].children] == [tool.id]


def test_turns_add_up_model_tokens_and_count_tool_calls_and_errors() -> None:
    chat = uuid.uuid4()
    rows = [
        make_trace(chat_id=chat, turn=1, kind="model", seconds=0, input_tokens=100,
                   cache_tokens=60, output_tokens=10, tokens_used=110, latency_ms=50.0),
        make_trace(chat_id=chat, turn=1, kind="tool", seconds=1, outcome="error", latency_ms=5.0),
        make_trace(chat_id=chat, turn=1, kind="tool", seconds=2, latency_ms=5.0,
                   finished_at=make_trace(chat_id=chat, seconds=9).started_at),
        make_trace(chat_id=chat, turn=2, kind="model", seconds=10, input_tokens=200,
                   cache_tokens=150, output_tokens=5, tokens_used=205),
        make_trace(chat_id=chat, kind="agent", seconds=0),  # not a call of the chat
    ]  # fmt: skip
    first, second = turns(reversed(rows))
    assert (first.turn_number, first.model_calls, first.tool_calls, first.errors) == (1, 1, 2, 1)
    assert (first.input_tokens, first.cache_tokens, first.output_tokens) == (100, 60, 10)
    assert first.tokens_used == 110 and first.latency_ms == 60.0
    assert first.started_at == rows[0].started_at
    assert first.finished_at == rows[0].started_at + timedelta(seconds=9)
    assert (second.turn_number, second.tool_calls, second.tokens_used) == (2, 0, 205)


def test_timeline_offsets_are_relative_to_the_first_start() -> None:
    rows = _run()
    entries = timeline(reversed(rows))
    assert entries[0].offset_ms == 0 and entries[0].kind == "workflow"
    assert [e.id for e in entries] == [r.id for r in rows]
    assert entries[1].offset_ms == 1000 and entries[1].duration_ms == 12.5
    assert timeline([]) == []


def test_a_chats_branch_is_its_calls_and_the_chats_they_started(store: Store) -> None:
    parent, child, grandchild = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    model = make_trace(chat_id=parent, kind="model", root_id=parent)
    tool = make_trace(chat_id=parent, seconds=1, parent_id=model.id, root_id=parent)
    inner = make_trace(chat_id=child, seconds=2, kind="model", parent_id=tool.id, root_id=parent)
    inner_tool = make_trace(chat_id=child, seconds=3, parent_id=inner.id, root_id=parent)
    deepest = make_trace(
        chat_id=grandchild, seconds=4, kind="model", parent_id=inner_tool.id, root_id=parent
    )
    later = make_trace(chat_id=parent, seconds=5, kind="model", root_id=parent)
    for trace in (model, tool, inner, inner_tool, deepest, later):
        store.writer.enqueue(trace)
    store.writer.flush()
    branch = store.traces.chat_tree(child)
    assert branch is not None and branch.root_id == parent
    assert [n.trace.id for n in walk(branch.nodes)] == [inner.id, inner_tool.id, deepest.id]
    assert [n.depth for n in walk(branch.nodes)] == [0, 1, 2]
    whole = store.traces.chat_tree(parent)
    assert whole is not None and whole.total == 6
    assert store.traces.chat_tree(uuid.uuid4()) is None


def _awkward_run() -> list[TraceRecord]:
    """A run whose rows hold what JSON writers spell differently, and large values."""
    rows = _run()
    model = next(r for r in rows if r.kind == "model")
    rows += [
        _row("tool", model, 2.5, input="é\"\\\n\x01" * 3_000, output={"k": ["ü", 1e21]} | {
            str(i): i for i in range(800)
        }),
        _row("tool", model, 2.6, tool_name="grép ✓", finished_at=None, latency_ms=None,
             cost_usd=0.1 + 0.2, error="boom\t\x1f", outcome="error", output=None),
        _row("tool", model, 3.0, input=[1.5, None, True], output="x" * 5_000),
    ]  # fmt: skip
    return rows


@pytest.mark.parametrize(
    "caps",
    [{}, {"max_nodes": 7}, {"max_depth": 2}, {"subtree": "phase"}, {"max_nodes": 0}],
)
def test_the_rest_json_tree_reads_as_the_tree_of_records(
    store: Store, caps: dict[str, object]
) -> None:
    from boonb.server.handlers import tree_json  # the records' JSON, as pydantic writes it

    rows = _awkward_run()
    for row in rows:
        store.writer.enqueue(row)
    assert store.writer.flush()
    if caps.get("subtree") == "phase":
        caps = {"subtree": rows[1].id}
    records = store.traces.tree(ROOT, **caps)  # type: ignore[arg-type]
    assert records is not None
    body = store.traces.tree_json(ROOT, **caps)  # type: ignore[arg-type]
    assert body is not None
    assert json.loads(body) == json.loads(tree_json(records))
    if not caps:  # the large values came cut, as in a page
        traces = [n.trace for n in walk(records.nodes)]
        cuts = [c for t in traces for c in (t.input_cut, t.output_cut) if c is not None]
        assert sorted(c.kind for c in cuts) == ["json", "string", "string"]


def test_the_rest_json_tree_of_an_unknown_root_or_subtree_is_none(store: Store) -> None:
    for row in _run():
        store.writer.enqueue(row)
    assert store.writer.flush()
    assert store.traces.tree_json(uuid.uuid4()) is None
    assert store.traces.tree_json(ROOT, subtree=uuid.uuid4()) is None
