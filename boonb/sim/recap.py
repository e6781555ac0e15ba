"""The planner's final answer: what its tool calls found, quoted, deterministically.

A simulator cannot understand files, so it does the honest next best thing: it says what
it searched for, which files matched, and quotes the lines that mention the term (or the
first lines of a file), so the answer visibly comes from the tool results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .messages import shorten
from .planner import Episode, Outcome, split_match

QUOTE_CHARS = 120
QUOTED_LINES = 3
QUOTED_MATCHES = 5
LISTED_NAMES = 10


def recap(episode: Episode) -> str:
    """The answer after the planner's tool turns, starting with ``[simulator]``."""
    term = episode.term
    outcomes = episode.outcomes
    read_any = any(o.name == "read_file" and o.result is not None for o in outcomes)
    lines = [f"[simulator] {_headline(outcomes, term)}"]
    for outcome in outcomes:
        if outcome.error is not None:
            error = shorten(outcome.error.removeprefix("Error: "), QUOTE_CHARS)
            lines.append(f"- {_call_label(outcome)} failed: {error}")
        elif outcome.name == "read_file":
            lines.append(_file_quote(outcome.result or {}, term))
        elif outcome.name == "grep" and not read_any:
            lines.extend(_match_quotes(outcome.result or {}))  # the matches are all it has
    return "\n".join(lines)


def _headline(outcomes: Sequence[Outcome], term: str | None) -> str:
    parts: list[str] = []
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            continue
        if outcome.name == "grep":
            parts.append(_grep_sentence(result, term))
        elif outcome.name == "list_files":
            parts.append(_listing_sentence(result))
    reads = [o for o in outcomes if o.name == "read_file" and o.result is not None]
    if reads:
        says = "it says" if len(reads) == 1 else "they say"
        parts.append(f"I read {_plural(len(reads), 'file')}; here is what {says}:")
    return " ".join(parts) or "I could not use the tools; here is what they returned:"


def _grep_sentence(result: Mapping[str, Any], term: str | None) -> str:
    matches = result.get("matches") or []
    searched = _plural(int(result.get("files_searched") or 0), "file")
    subject = f'"{term}"' if term else "the pattern"
    if not matches:
        return f"No line mentions {subject} (grep searched {searched})."
    files = {parsed[0] for line in matches if (parsed := split_match(str(line))) is not None}
    more = " (and more: the search was cut short)" if result.get("truncated") else ""
    return (
        f"{_plural(len(matches), 'line')} in {_plural(len(files), 'file')} mention "
        f"{subject} (grep searched {searched}){more}."
    )


def _listing_sentence(result: Mapping[str, Any]) -> str:
    entries = [
        str(entry.get("name"))
        for entry in result.get("entries") or []
        if isinstance(entry, Mapping) and entry.get("name")
    ]
    if not entries:
        return "The project has no files (list_files found none)."
    shown = ", ".join(entries[:LISTED_NAMES])
    more = f", and {len(entries) - LISTED_NAMES} more" if len(entries) > LISTED_NAMES else ""
    return f"The project has {_plural(len(entries), 'entry', 'entries')}: {shown}{more}."


def _match_quotes(result: Mapping[str, Any]) -> list[str]:
    quotes = []
    for match in (result.get("matches") or [])[:QUOTED_MATCHES]:
        parsed = split_match(str(match))
        if parsed is not None:
            path, line, text = parsed
            quotes.append(f'- {path}:{line}: "{shorten(text, QUOTE_CHARS)}"')
    return quotes


def _file_quote(result: Mapping[str, Any], term: str | None) -> str:
    path = str(result.get("path", "?"))
    content = str(result.get("content") or "")
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    chosen = [line for line in lines if term and term.lower() in line.lower()] or lines
    quotes = " ".join(f'"{shorten(line, QUOTE_CHARS)}"' for line in chosen[:QUOTED_LINES])
    total = _plural(int(result.get("total_lines") or 0), "line")
    return f"- {path} ({total}): {quotes or '(empty)'}"


def _call_label(outcome: Outcome) -> str:
    target = outcome.arguments.get("path") or outcome.arguments.get("pattern")
    return f"{outcome.name} {target}" if target else outcome.name


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"
