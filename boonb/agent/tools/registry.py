"""Tool registries: the tools an agent may call, by name.

A :class:`ToolRegistry` holds tools made with ``@tool`` (:mod:`.definition`, re-exported
here); :func:`default_registry` is a fresh one holding the built-ins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .builtins import BUILTIN_TOOLS
from .context import ToolContext
from .definition import Tool, tool
from .errors import UnknownToolError

__all__ = ["Tool", "ToolContext", "ToolRegistry", "default_registry", "tool"]


class ToolRegistry:
    """The tools an agent may call, by name, in registration order."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool, *, replace: bool = False) -> Tool:
        """Add a tool; returns it, so this also works as a decorator on ``@tool`` results.

        ``replace`` lets a tool of the same name be defined again (re-running a cell).
        """
        if not isinstance(tool, Tool):
            raise TypeError(f"register() expects a Tool (use @tool first), got {tool!r}")
        if tool.name in self._tools and not replace:
            raise ValueError(
                f"a tool named {tool.name!r} is already registered; pick another name "
                "with @tool(name=...)"
            )
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name, self._tools) from None

    def names(self) -> list[str]:
        return list(self._tools)

    def resolve(self, names: Iterable[str]) -> list[Tool]:
        """The tools for these names, in the order given; the first unknown name raises."""
        return [self.get(name) for name in names]

    def schemas(self, tools: Iterable[Tool | str] | None = None) -> list[dict[str, Any]]:
        """``openai_schema()`` of the given tools (or names), or of every registered tool."""
        chosen = self._tools.values() if tools is None else tools
        return [(self.get(t) if isinstance(t, str) else t).openai_schema() for t in chosen]

    def copy(self) -> ToolRegistry:
        """An independent registry with the same tools; registering on it leaves this one alone."""
        return ToolRegistry(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)


def default_registry() -> ToolRegistry:
    """A fresh registry holding the built-in tools (files, ``fetch_url``, ``notebook_vars``)."""
    return ToolRegistry(BUILTIN_TOOLS)
