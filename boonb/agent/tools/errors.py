"""The one exception hierarchy of ``boonb.agent.tools``.

Every message is written for two readers: the model, which gets it back as the tool's
answer and should be able to fix its call, and the person reading the trace.
"""

from __future__ import annotations

from collections.abc import Iterable

from boonb.errors import ToolError


class ToolArgumentError(ToolError):
    """The arguments do not fit the tool's schema (bad JSON, missing, unknown or wrong-typed)."""


class UnknownToolError(ToolError, KeyError):
    """No tool of that name is registered; the message lists the names that are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown tool {name!r}; known tools: {listed}")

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


class PathOutsideProject(ToolError):
    """A path given to a file tool leaves the project root (absolute, ``..`` or a symlink)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(
            f"path {path!r} is not allowed: {reason}. File tools only work inside the "
            "project root; give a relative path such as 'notes/todo.md'."
        )
