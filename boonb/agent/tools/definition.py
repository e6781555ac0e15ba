"""One tool: a typed function exposed to models with a schema and validated arguments.

``@tool`` turns a function into a :class:`Tool`. This module knows nothing of registries,
so the built-in tools can be made with ``@tool`` and a registry can hold them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, overload

from pydantic import JsonValue

from .context import ToolContext
from .errors import ToolArgumentError
from .jsonify import to_json_value
from .schema import FunctionSchema, function_schema

__all__ = ["Tool", "tool"]

# What OpenAI-compatible APIs accept as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Tool:
    """One callable tool: name, description, JSON schema of its arguments, and the function."""

    __slots__ = ("_schema", "description", "function", "kernel_only", "name", "parameters")

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str,
        description: str | None = None,
        kernel_only: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise TypeError(
                f"tool name {name!r} is not usable by models: use 1-64 letters, digits, '_' "
                "or '-' (pass name=... to @tool)"
            )
        self._schema: FunctionSchema = function_schema(function, tool_name=name)
        self.function = function
        self.name = name
        self.description = description if description is not None else self._schema.description
        self.parameters: dict[str, Any] = self._schema.parameters
        self.kernel_only = kernel_only
        """It needs the kernel (its namespace, its tasks): an agent on a Dask worker may
        not call it, though it keeps it in its prompt (see ``boonb.executors.host``)."""

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def openai_schema(self) -> dict[str, Any]:
        """The entry for the ``tools`` list of a chat-completions request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """Validated arguments by parameter name (``ToolContext`` excluded).

        Raises ``ToolArgumentError`` with a message a model can act on.
        """
        return self._schema.validate(self.name, self._parse(arguments))

    async def invoke(self, arguments: str | Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Validate, call, and convert the result to JSON.

        A sync function runs in a worker thread so file I/O or a slow computation never
        blocks the event loop; an async function is awaited on it.
        """
        values = self.validate(arguments)
        args, kwargs = self._schema.call_arguments(values, context)
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.function, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        return to_json_value(result)

    def _parse(self, arguments: str | Mapping[str, Any]) -> Mapping[str, Any]:
        if isinstance(arguments, Mapping):
            return arguments
        if not isinstance(arguments, str):
            raise ToolArgumentError(
                f"arguments for tool {self.name!r} must be a JSON object, "
                f"got {type(arguments).__name__}"
            )
        if not arguments.strip():
            return {}  # some models send "" for a tool without arguments
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolArgumentError(
                f"arguments for tool {self.name!r} are not valid JSON ({exc}); send one JSON "
                f"object with these arguments: {self._schema.expected()}"
            ) from None
        if not isinstance(parsed, dict):
            raise ToolArgumentError(
                f"arguments for tool {self.name!r} must be a JSON object mapping argument "
                f"names to values, got a JSON {type(parsed).__name__}; expected arguments: "
                f"{self._schema.expected()}"
            )
        return parsed


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, kernel_only: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    kernel_only: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` from a typed function; use as ``@tool`` or ``@tool(name=...)``.

    ``kernel_only=True`` marks a tool that only works in the kernel (it reads the
    notebook or the kernel's tasks), so agents run elsewhere refuse to call it.

    The description defaults to the docstring's first paragraph; argument descriptions come
    from ``Annotated[T, Field(description=...)]`` or the docstring's ``Args:`` section.
    Signature problems raise ``TypeError`` here, not when a model first calls the tool.
    """

    def decorate(function: Callable[..., Any]) -> Tool:
        if isinstance(function, Tool) or not callable(function):
            raise TypeError(f"@tool expects a function, got {type(function).__name__}")
        return Tool(
            function,
            name=name or function.__name__,
            description=description,
            kernel_only=kernel_only,
        )

    if fn is None:
        return decorate
    return decorate(fn)
