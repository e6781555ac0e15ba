"""The trace viewer's static rendering, for places without a widget manager.

nbviewer, GitHub and terminal IPython cannot run the view, so the widget's mime bundle
also carries this summary as ``text/html`` and ``text/plain``: the chat's figures, and its
calls as a tree (tool calls under the model call that asked for them, a chat a tool
started under that tool call), so a saved notebook shows what ran under what.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from uuid import UUID

from boonb.store import ChatTotals, FailedCall, SlowCall, Store
from boonb.store.projections import TraceTree, TreeNode, walk

STATIC_TREE_NODES = 200
"""Calls the static tree shows at most (the top levels first), to keep notebooks small."""


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """What the static rendering shows about one chat."""

    chat_id: UUID
    turns: int
    totals: ChatTotals
    slowest: list[SlowCall]
    errors: list[FailedCall]
    tree: TraceTree | None = None
    """The chat's calls nested, capped at :data:`STATIC_TREE_NODES`."""

    @property
    def cache_hit_rate(self) -> float | None:
        """Cache-read tokens over prompt tokens (cache-read included); None without prompts."""
        return self.totals.cache_hit_rate


def summarize(store: Store, chat_id: UUID) -> TraceSummary:
    """Read a chat's summary (flushing the writer first so recent traces count)."""
    store.writer.flush(timeout=5)
    highlights = store.traces.chat_highlights(chat_id)
    return TraceSummary(
        chat_id=chat_id,
        turns=highlights.turns,
        totals=store.traces.chat_totals(chat_id),
        slowest=highlights.slowest,
        errors=highlights.errors,
        tree=store.traces.chat_tree(chat_id, max_nodes=STATIC_TREE_NODES),
    )


def format_tokens(n: int) -> str:
    """1234 -> '1.2K', 5_600_000 -> '5.6M' (the view uses the same style)."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}".removesuffix(".0") + "K"
    return f"{n / 1_000_000:.1f}".removesuffix(".0") + "M"


def format_latency(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def format_rate(summary: TraceSummary) -> str:
    rate = summary.cache_hit_rate
    totals = summary.totals
    if rate is None:
        return "– (no prompt tokens)"
    return (
        f"{rate:.0%} ({format_tokens(totals.cache_tokens)}/"
        f"{format_tokens(totals.input_tokens)} tokens)"
    )


def summary_text(summary: TraceSummary) -> str:
    totals = summary.totals
    lines = [
        f"Traces of chat {summary.chat_id}",
        f"  turns {summary.turns} · calls {totals.traces} "
        f"({totals.model_calls} model, {totals.tool_calls} tool) · errors {totals.errors}",
        f"  tokens {format_tokens(totals.tokens_used)} "
        f"(input {format_tokens(totals.input_tokens)}, "
        f"output {format_tokens(totals.output_tokens)})"
        f" · cache hit rate {format_rate(summary)}",
    ]
    if summary.slowest:
        slow = ", ".join(
            f"{c.tool_name} {format_latency(c.latency_ms)} (turn {c.turn_number})"
            for c in summary.slowest
        )
        lines.append(f"  slowest: {slow}")
    for call in summary.errors:
        lines.append(f"  error in {call.tool_name} (turn {call.turn_number}): {call.error[:200]}")
    if summary.tree is not None and summary.tree.nodes:
        lines.append("  calls:")
        for node in walk(summary.tree.nodes):
            lines.append(f"    {'  ' * node.depth}{_node_line(node)}")
        lines += _cut_note(summary.tree, indent="    ")
    return "\n".join(lines)


def _facts(node: TreeNode) -> list[str]:
    """What the static tree says of a call besides its kind, name and outcome."""
    trace = node.trace
    facts = [format_latency(trace.latency_ms)]
    if trace.tokens_used:
        facts.append(f"{format_tokens(trace.tokens_used)} tokens")
    if node.hidden_children:
        facts.append(f"+{node.hidden_children} more under it")
    return facts


def _node_line(node: TreeNode) -> str:
    """One call in the static tree: kind, name, latency, tokens, hidden children, outcome."""
    trace = node.trace
    outcome = [] if trace.outcome == "success" else [trace.outcome]
    return " · ".join([trace.kind, trace.tool_name, *_facts(node), *outcome])


def _cut_note(tree: TraceTree, *, indent: str = "") -> list[str]:
    if tree.shown == tree.total:
        return []
    return [f"{indent}({tree.total - tree.shown} more calls not shown; the live view has all)"]


def tree_html(tree: TraceTree) -> str:
    """The tree as nested lists: plain HTML that GitHub and nbviewer keep."""
    return "".join(_nodes_html(tree.nodes)) + "".join(
        f"<p><em>{escape(note)}</em></p>" for note in _cut_note(tree)
    )


def _nodes_html(nodes: list[TreeNode]) -> list[str]:
    if not nodes:
        return []
    items = []
    for node in nodes:
        trace = node.trace
        mark = "" if trace.outcome == "success" else f" · <strong>{escape(trace.outcome)}</strong>"
        items.append(
            f"<li><code>{escape(trace.kind)}</code> <b>{escape(trace.tool_name)}</b> · "
            f"{escape(' · '.join(_facts(node)))}{mark}"
            f"{''.join(_nodes_html(node.children))}</li>"
        )
    return [f"<ul style='margin:0.2em 0;padding-left:1.4em'>{''.join(items)}</ul>"]


def summary_html(summary: TraceSummary) -> str:
    totals = summary.totals
    rows = [
        ("Turns", str(summary.turns)),
        (
            "Calls",
            f"{totals.traces} ({totals.model_calls} model, {totals.tool_calls} tool)",
        ),
        (
            "Tokens",
            f"{format_tokens(totals.tokens_used)} (input {format_tokens(totals.input_tokens)}, "
            f"output {format_tokens(totals.output_tokens)})",
        ),
        ("Cache hit rate", format_rate(summary)),
        (
            "Slowest calls",
            "<br>".join(
                f"<code>{escape(c.tool_name)}</code> {format_latency(c.latency_ms)} "
                f"(turn {c.turn_number})"
                for c in summary.slowest
            )
            or "–",
        ),
        ("Errors", str(totals.errors)),
    ]
    cells = []
    for label, value in rows:
        # Values are built from escaped text above, or are numbers.
        cells.append(f"<tr><th style='text-align:left'>{label}</th><td>{value}</td></tr>")
    for call in summary.errors:
        cells.append(
            f"<tr><th style='text-align:left'>Error (turn {call.turn_number})</th>"
            f"<td><code>{escape(call.tool_name)}</code>: {escape(call.error[:200])}</td></tr>"
        )
    calls = ""
    if summary.tree is not None and summary.tree.nodes:
        calls = (
            f"<div class='boonb-traces-tree'><strong>Calls</strong>{tree_html(summary.tree)}</div>"
        )
    return (
        f"<div class='boonb-traces-static' data-chat-id='{summary.chat_id}'>"
        f"<strong>boonb traces</strong> · chat <code>{summary.chat_id}</code>"
        f"<table>{''.join(cells)}</table>{calls}</div>"
    )
