"""Turn a function signature into a pydantic arguments model and a JSON schema.

The model validates what the model (LLM) sends; its JSON schema is what the LLM sees. Each
parameter becomes a field named ``p<i>`` with the parameter's name as alias, so argument
names such as ``json``, ``copy`` or ``model_config`` never collide with ``BaseModel``
attributes, while the schema and error locations still show the real name.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema

from .context import ToolContext
from .docstrings import parse_docstring
from .errors import ToolArgumentError


class _NoFieldTitles(GenerateJsonSchema):
    """Drop per-field ``title`` keys: they repeat the name and cost tokens on every call."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class Parameter:
    """One parameter of a tool function and the field of the arguments model it maps to."""

    name: str
    field_name: str
    """The ``p<i>`` field in the arguments model."""
    positional_only: bool
    injected: bool = False
    """True for a ``ToolContext`` parameter: filled by ``invoke``, hidden from the schema."""


@dataclass(frozen=True)
class FunctionSchema:
    """Everything ``Tool`` needs to validate arguments and call the function."""

    description: str
    parameters: dict[str, Any]
    arguments_model: type[BaseModel]
    signature: tuple[Parameter, ...]

    def validate(self, tool_name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validated values by parameter name, defaults filled in."""
        try:
            model = self.arguments_model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentError(self._explain(tool_name, exc)) from None
        return {p.name: getattr(model, p.field_name) for p in self.signature if not p.injected}

    def call_arguments(
        self, values: Mapping[str, Any], context: ToolContext
    ) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in self.signature:
            value = context if p.injected else values[p.name]
            if p.positional_only:
                args.append(value)
            else:
                kwargs[p.name] = value
        return args, kwargs

    def _explain(self, tool_name: str, exc: ValidationError) -> str:
        problems = [_describe_error(error) for error in exc.errors()]
        lines = [f"invalid arguments for tool {tool_name!r}:"]
        lines += [f"- {problem}" for problem in problems]
        lines.append(f"expected arguments: {self.expected()}")
        return "\n".join(lines)

    def expected(self) -> str:
        props: dict[str, Any] = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        if not props:
            return "none (send {})"
        parts = []
        for name, prop in props.items():
            kind = prop.get("type") or "any"
            if "anyOf" in prop:
                kind = " or ".join(str(p.get("type", "object")) for p in prop["anyOf"])
            parts.append(f"{name} ({kind}, {'required' if name in required else 'optional'})")
        return ", ".join(parts)


def _describe_error(error: Any) -> str:
    loc = error.get("loc", ())
    where = str(loc[0]) if loc else "arguments"
    for part in loc[1:]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind = error.get("type")
    if kind == "missing" and len(loc) == 1:
        return f"missing required argument {where!r}"
    if kind == "extra_forbidden" and len(loc) == 1:
        return f"unknown argument {where!r}; remove it"
    shown = repr(error.get("input"))
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"argument {where!r}: {error.get('msg', 'invalid value')} (got {shown})"


def function_schema(fn: Callable[..., Any], *, tool_name: str) -> FunctionSchema:
    """Build the schema; raises ``TypeError`` naming the parameter if the signature can't work."""
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError, TypeError ... from evaluating user annotations
        raise TypeError(
            f"tool {tool_name!r}: cannot evaluate the type hints of {fn.__qualname__} ({exc}); "
            "define the types it uses at module level"
        ) from exc
    docs = parse_docstring(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    params: list[Parameter] = []
    for index, (name, param) in enumerate(signature.parameters.items()):
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(
                f"tool {tool_name!r}: *{name}/**{name} parameters cannot be described to a "
                "model; list each argument explicitly"
            )
        if name not in hints:
            raise TypeError(
                f"tool {tool_name!r}: parameter {name!r} has no type annotation; annotate it so "
                "its schema and validation can be derived"
            )
        hint = hints[name]
        positional_only = param.kind is inspect.Parameter.POSITIONAL_ONLY
        if hint is ToolContext:
            params.append(Parameter(name, "", positional_only, injected=True))
            continue
        field_name = f"p{index}"
        params.append(Parameter(name, field_name, positional_only))
        default = ... if param.default is inspect.Parameter.empty else param.default
        extra: dict[str, Any] = {}
        if name in docs.arguments and not _has_description(hint):
            extra["description"] = docs.arguments[name]
        fields[field_name] = (hint, Field(default, alias=name, **extra))
    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        parameters = model.model_json_schema(schema_generator=_NoFieldTitles)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, ValueError) as exc:
        raise TypeError(f"tool {tool_name!r}: cannot build a JSON schema: {exc}") from exc
    parameters.pop("title", None)
    parameters.setdefault("properties", {})
    return FunctionSchema(docs.summary, parameters, model, tuple(params))


def _has_description(hint: Any) -> bool:
    if typing.get_origin(hint) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in hint.__metadata__)
