"""A run's readable summary: what ``%workflow status RUN`` prints and returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from boonb.frames import WorkflowStep
from boonb.store import RunDetail


class RunReport:
    """A run's pane as text; its repr is that text, so a cell ending in it shows the summary.

    ``detail`` holds the data (status, steps, logs, result) for code that wants it.
    """

    def __init__(self, detail: RunDetail) -> None:
        self.detail = detail
        self.text = format_run(detail)

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)


LOG_TAIL = 5
"""Log lines a summary ends with."""
RESULT_CHARS = 600
"""Characters of the result a summary shows (the rest is folded)."""

_MARKS = {"started": "▶", "completed": "✓", "failed": "✗", "cached": "↺", "cancelled": "■"}


def format_run(detail: RunDetail) -> str:
    """Header, one line per step, the last log lines and the result, as plain text."""
    lines = [_header(detail), *_steps(detail.steps)]
    if detail.logs:
        shown = detail.logs[-LOG_TAIL:]
        lines.append(f"log (last {len(shown)} of {detail.logs_total:,}):")
        lines += [f"  {_where(line.phase, line.label)}{line.message}" for line in shown]
    if detail.status.error:
        lines.append(f"error: {detail.status.error}")
    if detail.result is not None:
        lines.append("result: " + _fold(_pretty(detail.result)))
    return "\n".join(lines)


def _header(detail: RunDetail) -> str:
    status = detail.status
    phase = f" (phase {status.phase})" if status.phase else ""
    parts = [
        f"{status.workflow} · {status.state}{phase}",
        f"{status.agents_done}/{status.agents_total} agents"
        + (f", {status.agents_cached} cached" if status.agents_cached else "")
        + (f", {status.agents_failed} failed" if status.agents_failed else ""),
        f"{status.tokens_used:,}" + (f" of {status.budget:,}" if status.budget else "") + " tokens",
    ]
    if status.started_at is not None:
        end = status.finished_at or datetime.now(UTC)
        parts.append(f"{(end - status.started_at).total_seconds():.1f} s")
    return f"run {status.run_id}\n" + " · ".join(parts)


def _steps(steps: list[WorkflowStep]) -> list[str]:
    if not steps:
        return []
    width = max(len(_where(step.phase, step.label)) for step in steps)
    lines = ["steps:"]
    for step in steps:
        facts: list[str] = ["skipped (cached)" if step.state == "cached" else step.state]
        if step.tokens_used:
            facts.append(f"{step.tokens_used:,} tokens")
        if step.duration_ms is not None and step.state != "cached":
            facts.append(f"{step.duration_ms / 1000:.1f} s")
        if step.error:
            facts.append(step.error)
        where = _where(step.phase, step.label)
        lines.append(f"  {_MARKS.get(step.state, '·')} {where:<{width}}  {', '.join(facts)}")
    return lines


def _where(phase: str | None, label: str | None) -> str:
    return (f"[{phase}] " if phase else "") + (f"{label}: " if label else "")


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _fold(text: str) -> str:
    if len(text) <= RESULT_CHARS:
        return text
    return f"{text[:RESULT_CHARS]}… ({len(text) - RESULT_CHARS:,} more characters; .detail.result)"
