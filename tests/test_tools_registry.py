"""The tool registry: schema and validation from type hints, invocation, registry lookups."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.errors import ToolArgumentError, ToolError, UnknownToolError
from boonb.agent.tools.registry import Tool, ToolRegistry, default_registry, tool


def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(project_root=tmp_path)


@tool
def search_notes(
    query: Annotated[str, Field(description="Words to look for.")],
    limit: int = 10,
    tags: list[str] | None = None,
    exact: bool = False,
) -> list[str]:
    """Search the notes.

    Only notes in the current project are searched.

    Args:
        query: Overridden by the Field description.
        limit: How many notes to return at most.
        tags: Only notes with all of these
            tags (continuation line).
    """
    return [query] * min(limit, 2)


def test_schema_has_types_defaults_required_and_descriptions() -> None:
    params = search_notes.parameters
    assert params["type"] == "object"
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert list(props) == ["query", "limit", "tags", "exact"]
    assert props["query"] == {"type": "string", "description": "Words to look for."}
    assert props["limit"] == {
        "type": "integer",
        "default": 10,
        "description": "How many notes to return at most.",
    }
    assert props["tags"]["description"] == "Only notes with all of these tags (continuation line)."
    assert {"type": "array", "items": {"type": "string"}} in props["tags"]["anyOf"]
    assert props["tags"]["default"] is None
    assert props["exact"] == {"type": "boolean", "default": False}


def test_description_is_the_prose_before_the_args_section() -> None:
    assert search_notes.description == (
        "Search the notes.\n\nOnly notes in the current project are searched."
    )


def test_openai_schema_wraps_name_description_and_parameters() -> None:
    schema = search_notes.openai_schema()
    assert schema == {
        "type": "function",
        "function": {
            "name": "search_notes",
            "description": search_notes.description,
            "parameters": search_notes.parameters,
        },
    }


def test_decorator_with_arguments_overrides_name_and_description() -> None:
    @tool(name="renamed", description="Custom text.")
    def original(x: int) -> int:
        """Ignored."""
        return x

    assert isinstance(original, Tool)
    assert original.name == "renamed"
    assert original.description == "Custom text."


def test_argument_names_that_shadow_basemodel_attributes_work(tmp_path: Path) -> None:
    @tool
    def shadowing(json: str, copy: int, model_config: bool = False) -> list[Any]:
        """Argument names that are BaseModel attributes."""
        return [json, copy, model_config]

    assert list(shadowing.parameters["properties"]) == ["json", "copy", "model_config"]
    result = asyncio.run(shadowing.invoke({"json": "a", "copy": 2}, ctx(tmp_path)))
    assert result == ["a", 2, False]


def test_invoke_accepts_a_raw_json_string(tmp_path: Path) -> None:
    result = asyncio.run(search_notes.invoke('{"query": "duck", "limit": 5}', ctx(tmp_path)))
    assert result == ["duck", "duck"]


def test_empty_argument_string_means_no_arguments(tmp_path: Path) -> None:
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert asyncio.run(ping.invoke("", ctx(tmp_path))) == "pong"


def _argument_error(arguments: str | dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ToolArgumentError) as info:
        asyncio.run(search_notes.invoke(arguments, ctx(tmp_path)))
    return str(info.value)


def test_missing_argument_is_named(tmp_path: Path) -> None:
    message = _argument_error({"limit": 3}, tmp_path)
    assert "missing required argument 'query'" in message
    assert "query (string, required)" in message


def test_wrong_type_names_the_argument_and_the_value(tmp_path: Path) -> None:
    message = _argument_error({"query": "x", "limit": "lots"}, tmp_path)
    assert "argument 'limit'" in message
    assert "valid integer" in message
    assert "'lots'" in message
    assert "pydantic" not in message.lower()
    assert "errors.pydantic.dev" not in message


def test_wrong_type_inside_a_list_shows_the_position(tmp_path: Path) -> None:
    message = _argument_error({"query": "x", "tags": ["a", 3]}, tmp_path)
    assert "argument 'tags[1]'" in message


def test_unknown_argument_is_named(tmp_path: Path) -> None:
    message = _argument_error({"query": "x", "colour": "red"}, tmp_path)
    assert "unknown argument 'colour'" in message


def test_invalid_json_string_is_explained(tmp_path: Path) -> None:
    message = _argument_error('{"query": "x",', tmp_path)
    assert "not valid JSON" in message
    assert "query (string, required)" in message


def test_json_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    message = _argument_error('["x"]', tmp_path)
    assert "must be a JSON object" in message
    assert "list" in message


def test_argument_error_is_a_tool_error() -> None:
    assert issubclass(ToolArgumentError, ToolError)


def test_sync_tool_runs_off_the_event_loop_thread(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    @tool
    def where() -> None:
        """Record the thread."""
        seen["tool"] = threading.get_ident()

    async def main() -> None:
        seen["loop"] = threading.get_ident()
        await where.invoke({}, ctx(tmp_path))

    asyncio.run(main())
    assert seen["tool"] != seen["loop"]


def test_sync_tool_does_not_block_other_tasks(tmp_path: Path) -> None:
    release = threading.Event()

    @tool
    def blocking() -> str:
        """Wait until released."""
        assert release.wait(5)
        return "done"

    async def main() -> str:
        call = asyncio.create_task(blocking.invoke({}, ctx(tmp_path)))
        await asyncio.sleep(0.01)  # the loop still runs while the tool blocks
        release.set()
        return str(await call)

    assert asyncio.run(main()) == "done"


def test_async_tool_is_awaited_on_the_loop(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    @tool
    async def later(delay: float) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(delay)
        seen["tool"] = threading.get_ident()
        return "awake"

    async def main() -> Any:
        seen["loop"] = threading.get_ident()
        return await later.invoke({"delay": 0.001}, ctx(tmp_path))

    assert asyncio.run(main()) == "awake"
    assert seen["tool"] == seen["loop"]


def test_tool_context_is_injected_and_hidden_from_the_schema(tmp_path: Path) -> None:
    @tool
    def root_name(suffix: str, context: ToolContext) -> str:
        """Name of the project root plus a suffix."""
        return context.project_root.name + suffix

    assert list(root_name.parameters["properties"]) == ["suffix"]
    assert root_name.parameters["required"] == ["suffix"]
    assert asyncio.run(root_name.invoke({"suffix": "!"}, ctx(tmp_path))) == tmp_path.name + "!"
    # The model cannot pass the context itself.
    with pytest.raises(ToolArgumentError, match="unknown argument 'context'"):
        asyncio.run(root_name.invoke({"suffix": "!", "context": {}}, ctx(tmp_path)))


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    corner: Point
    where: Path
    tags: frozenset[str]


def test_results_are_converted_to_json_values(tmp_path: Path) -> None:
    @tool
    def make_box(x: int) -> Box:
        """Build a box."""
        return Box(Point(x=x, y=2), Path("a/b.txt"), frozenset({"t"}))

    result = asyncio.run(make_box.invoke({"x": 1}, ctx(tmp_path)))
    assert result == {"corner": {"x": 1, "y": 2}, "where": "a/b.txt", "tags": ["t"]}


def test_pydantic_model_arguments_are_validated(tmp_path: Path) -> None:
    @tool
    def distance(a: Point, b: Point) -> int:
        """Manhattan distance."""
        return abs(a.x - b.x) + abs(a.y - b.y)

    assert distance.parameters["properties"]["a"] == {"$ref": "#/$defs/Point"}
    args = '{"a": {"x": 0, "y": 0}, "b": {"x": 2, "y": 3}}'
    assert asyncio.run(distance.invoke(args, ctx(tmp_path))) == 5
    with pytest.raises(ToolArgumentError, match=r"argument 'b\.y'"):
        asyncio.run(distance.invoke({"a": {"x": 0, "y": 0}, "b": {"x": 1}}, ctx(tmp_path)))


def test_positional_only_parameters_are_passed_by_position(tmp_path: Path) -> None:
    @tool
    def pos(a: int, /, b: int) -> int:
        """Subtract."""
        return a - b

    assert asyncio.run(pos.invoke({"a": 5, "b": 2}, ctx(tmp_path))) == 3


def test_unannotated_parameter_is_a_type_error_at_decoration() -> None:
    with pytest.raises(TypeError, match="parameter 'x' has no type annotation"):

        @tool
        def bad(x, y: int) -> int:
            return y


def test_var_args_and_kwargs_are_type_errors_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"\*args"):

        @tool
        def star(*args: int) -> None:
            pass

    with pytest.raises(TypeError, match=r"kwargs"):

        @tool
        def double_star(a: int, **kwargs: int) -> None:
            pass


def test_unusable_name_and_non_function_are_type_errors() -> None:
    with pytest.raises(TypeError, match="not usable by models"):
        tool(lambda: None)
    with pytest.raises(TypeError, match="expects a function"):
        tool(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="expects a function"):
        tool(search_notes)  # type: ignore[call-overload]


class Opaque:
    pass


def test_type_without_a_json_schema_is_a_type_error_at_decoration() -> None:
    with pytest.raises(TypeError, match="cannot build a JSON schema"):

        @tool
        def takes_opaque(thing: Opaque) -> None:
            """Not describable."""


def test_unresolvable_annotation_is_a_type_error_at_decoration() -> None:
    class Local:
        pass

    # With postponed annotations, a class local to a function cannot be found again.
    with pytest.raises(TypeError, match="define the types it uses at module level"):

        @tool
        def takes_local(thing: Local) -> None:
            """Not resolvable."""


def test_registry_registers_gets_and_lists_names() -> None:
    registry = ToolRegistry()
    assert registry.register(search_notes) is search_notes
    assert registry.get("search_notes") is search_notes
    assert registry.names() == ["search_notes"]
    assert "search_notes" in registry
    assert len(registry) == 1


def test_registry_refuses_duplicate_names() -> None:
    registry = ToolRegistry([search_notes])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(search_notes)


def test_unknown_tool_error_lists_known_names() -> None:
    registry = ToolRegistry([search_notes])
    with pytest.raises(UnknownToolError) as info:
        registry.get("serch_notes")
    assert str(info.value) == "unknown tool 'serch_notes'; known tools: search_notes"
    assert isinstance(info.value, ToolError)


def test_resolve_and_schemas_keep_the_requested_order() -> None:
    registry = default_registry()
    tools = registry.resolve(["write_file", "read_file"])
    assert [t.name for t in tools] == ["write_file", "read_file"]
    assert [s["function"]["name"] for s in registry.schemas(tools)] == ["write_file", "read_file"]
    assert len(registry.schemas()) == len(registry.names())
    with pytest.raises(UnknownToolError):
        registry.resolve(["read_file", "nope"])


def test_copy_is_independent() -> None:
    registry = default_registry()
    extra = registry.copy()
    extra.register(search_notes)
    assert "search_notes" in extra
    assert "search_notes" not in registry


def test_default_registry_holds_the_builtins_and_is_fresh() -> None:
    registry = default_registry()
    assert registry.names() == [
        "list_files",
        "read_file",
        "grep",
        "write_file",
        "fetch_url",
        "notebook_vars",
    ]
    registry.register(search_notes)
    assert "search_notes" not in default_registry()
    for schema in registry.schemas():
        assert "context" not in schema["function"]["parameters"]["properties"]
