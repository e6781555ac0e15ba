"""Tools for boonb's agents: typed functions with a schema, validation and safe built-ins.

Write a tool as a typed function and decorate it::

    @tool
    def word_count(text: str) -> int:
        \"\"\"Count the words in a text.\"\"\"
        return len(text.split())

The JSON schema the model sees and the validation of what it sends both come from the
signature (pydantic). :func:`default_registry` holds the built-ins.
"""

from .context import ToolContext
from .errors import PathOutsideProject, ToolArgumentError, ToolError, UnknownToolError
from .registry import Tool, ToolRegistry, default_registry, tool

__all__ = [
    "PathOutsideProject",
    "Tool",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "UnknownToolError",
    "default_registry",
    "tool",
]
