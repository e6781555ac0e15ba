"""Read a tool's description and per-argument help out of its docstring.

Only the shapes people actually write are understood: prose, then Google-style sections.
The prose before the first section is the tool's description: a one-line summary (which
pydocstyle requires) is rarely enough for a model, so later paragraphs are kept too.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?):\s*$"
)
_ARG_SECTION = {"Args", "Arguments", "Parameters", "Params"}
_ARG_LINE = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")


@dataclass(frozen=True)
class ParsedDocstring:
    """A tool function's docstring split into its summary and its per-argument descriptions."""

    summary: str = ""
    """The text before the first section (``Args:`` ...): paragraphs kept, lines joined."""
    arguments: dict[str, str] = field(default_factory=dict)
    """Argument name -> its description from the ``Args:`` section."""


def parse_docstring(doc: str | None) -> ParsedDocstring:
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if _SECTION.match(line.strip()):
            break
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    summary = "\n\n".join(" ".join(p) for p in paragraphs if p)
    return ParsedDocstring(summary, _arguments(lines))


def _arguments(lines: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    in_section = False
    header_indent = 0
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        match = _SECTION.match(stripped)
        if match:
            in_section = match.group(1) in _ARG_SECTION
            header_indent, entry_indent, current = indent, None, None
            continue
        if not in_section or not stripped:
            continue
        if indent <= header_indent:
            in_section = False
            continue
        if entry_indent is None:
            entry_indent = indent
        arg = _ARG_LINE.match(stripped)
        if indent == entry_indent and arg:
            current = arg.group("name")
            result[current] = arg.group("text").strip()
        elif current is not None:
            result[current] = f"{result[current]} {stripped}".strip()
    return result
