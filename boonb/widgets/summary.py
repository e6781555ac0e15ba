"""The trace viewer's static rendering, for places without a widget manager.

nbviewer, GitHub and terminal IPython cannot run the view, so the widget's mime bundle
also carries this summary as ``text/html`` and ``text/plain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from uuid import UUID

from boonb.store import ChatTotals, FailedCall, SlowCall, Store


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """What the static rendering shows about one chat."""

    chat_id: UUID
    turns: int
    totals: ChatTotals
    slowest: list[SlowCall]
    errors: list[FailedCall]

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
    return "\n".join(lines)


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
    return (
        f"<div class='boonb-traces-static' data-chat-id='{summary.chat_id}'>"
        f"<strong>boonb traces</strong> · chat <code>{summary.chat_id}</code>"
        f"<table>{''.join(cells)}</table></div>"
    )
