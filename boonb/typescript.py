"""TypeScript declarations of every message between a view and Python, from the pydantic models.

One run writes every generated file of ``labextension/src`` (:data:`UNITS`): the frames, the
replies every view shares, and each view's requests and replies. A type is declared once, in
the first unit that reaches it, and imported by the others, so the chat's protocol imports
``TraceRecord`` from ``frames.ts`` instead of declaring it again.

Replies reach the browser as ``model_dump(mode="json")``, which emits every field, so their
properties are all declared required (a defaulted field is still present). Requests are
declared from the validation schema: a defaulted field may be left out. The models'
docstrings, and their fields' attribute docstrings, become doc comments.

Run ``python scripts/generate_typescript.py`` after changing a model; ``tests/test_typescript.py``
fails while a generated file is stale.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, is_dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import TypeAdapter

from boonb import frames
from boonb.server import views
from boonb.store import activity, project_lists, requests_from_server, workflow_runs
from boonb.widgets import chat_protocol, orchestrator_protocol, protocol, tasks_protocol
from boonb.workflow import models as workflow_models

Mode = Literal["validation", "serialization"]
Schema = dict[str, Any]


@dataclass(frozen=True)
class Root:
    """A type a unit exports: a model, or a union it names ``name``."""

    name: str
    annotation: Any
    mode: Mode
    """``validation`` for what a view sends (defaults may be left out), else ``serialization``."""


@dataclass(frozen=True)
class Unit:
    """One generated file and the Python types it declares."""

    path: str
    """Relative to ``labextension/src``."""
    sources: tuple[ModuleType, ...]
    """The modules whose models it mirrors, named in its header."""
    roots: tuple[Root, ...]
    extra: Callable[[Schema], str] | None = field(default=None, compare=False)
    """Declarations beyond the types, from the roots' merged schema."""


def _frame_types(schema: Schema) -> str:
    frame = next(s for s in schema["roots"] if s.get("discriminator"))
    types = [json.dumps(t) for t in sorted(frame["discriminator"]["mapping"])]
    return (
        "export type FrameType = Frame['type'];\n\n"
        + "export const FRAME_TYPES: readonly FrameType[] = [\n"
        + "".join(f"  {t},\n" for t in types)
        + "];\n"
    )


# Order matters: a type shared by two units is declared in the first.
UNITS: tuple[Unit, ...] = (
    Unit(
        "frames.ts",
        (frames,),
        (Root("Frame", frames.Frame, "serialization"),),
        extra=_frame_types,
    ),
    Unit(
        "shared/protocol.ts",
        (protocol,),
        (Root("ErrorReply", protocol.ErrorReply, "serialization"),),
    ),
    Unit(
        "traceviewer/protocol.ts",
        (protocol,),
        (
            Root("Request", protocol.Request, "validation"),
            Root("Reply", protocol.Reply, "serialization"),
            Root("KernelMessage", protocol.Reply | protocol.FrameMessage, "serialization"),
        ),
    ),
    Unit(
        "chat/protocol.ts",
        (chat_protocol,),
        (
            Root("ChatRequest", chat_protocol.ChatRequest, "validation"),
            Root("ChatReply", chat_protocol.ChatReply, "serialization"),
            Root(
                "ChatKernelMessage",
                chat_protocol.ChatReply | chat_protocol.ChatFrameMessage,
                "serialization",
            ),
        ),
    ),
    Unit(
        "tasks/protocol.ts",
        (tasks_protocol,),
        (
            Root("TasksRequest", tasks_protocol.TasksRequest, "validation"),
            Root("TasksReply", tasks_protocol.TasksReply, "serialization"),
            Root(
                "TasksKernelMessage",
                tasks_protocol.TasksReply | tasks_protocol.TaskFrameMessage,
                "serialization",
            ),
        ),
    ),
    Unit(
        "orchestrator/api.ts",
        (workflow_models, workflow_runs),
        (
            Root("WorkflowInfo", workflow_models.WorkflowInfo, "serialization"),
            Root("ArgsCheck", workflow_models.ArgsCheck, "serialization"),
            Root("RunStatus", workflow_models.RunStatus, "serialization"),
            Root("RunPage", workflow_runs.RunPage, "serialization"),
            Root("RunDetail", workflow_runs.RunDetail, "serialization"),
        ),
    ),
    Unit(
        "orchestrator/protocol.ts",
        (orchestrator_protocol,),
        (
            Root("OrchestratorRequest", orchestrator_protocol.OrchestratorRequest, "validation"),
            Root("OrchestratorReply", orchestrator_protocol.OrchestratorReply, "serialization"),
            Root(
                "OrchestratorKernelMessage",
                orchestrator_protocol.OrchestratorReply | orchestrator_protocol.RunFramesMessage,
                "serialization",
            ),
        ),
    ),
    Unit(
        "lab/api.ts",
        (project_lists, requests_from_server, activity, views),
        (
            Root("ChatPage", project_lists.ChatPage, "serialization"),
            Root("TaskPage", project_lists.TaskPage, "serialization"),
            Root("ListedRunPage", project_lists.ListedRunPage, "serialization"),
            Root("TaskRequestAnswer", requests_from_server.TaskRequestAnswer, "serialization"),
            Root("RunRequestAnswer", requests_from_server.RunRequestAnswer, "serialization"),
            Root("Activity", activity.Activity, "serialization"),
            Root("ViewRequest", views.ViewRequest, "validation"),
            Root("ViewReplies", views.ViewReplies, "serialization"),
            Root("ViewFrames", views.ViewFrames, "serialization"),
        ),
    ),
)

JSON_VALUE = """\
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };
"""


def generate(units: tuple[Unit, ...] = UNITS) -> dict[str, str]:
    """Every generated file's text, by its path relative to ``labextension/src``."""
    owner: dict[str, str] = {"JsonValue": units[0].path}
    unions: dict[frozenset[str], str] = {}
    seen: dict[str, Schema] = {}
    out: dict[str, str] = {}
    for unit in units:
        schemas = [_schema(root) for root in unit.roots]
        defs: dict[str, Schema] = {}
        for schema in schemas:
            for name, node in schema.get("$defs", {}).items():
                _check_same(name, node, seen.setdefault(name, node))
                defs[name] = node
        own = sorted(name for name in defs if owner.setdefault(name, unit.path) == unit.path)
        for root, schema in zip(unit.roots, schemas, strict=True):
            if _is_alias(root, schema):
                owner.setdefault(root.name, unit.path)
                unions.setdefault(_members(schema), root.name)
        writer = _Writer(unions)
        blocks = [writer.declaration(name, defs[name]) for name in own if name != "JsonValue"]
        for root, schema in zip(unit.roots, schemas, strict=True):
            if _is_alias(root, schema):
                blocks.append(f"export type {root.name} =\n{writer.union(schema, root.name)};\n")
        if unit.extra is not None:
            blocks.append(unit.extra({"roots": schemas}))
        if unit.path == owner["JsonValue"]:
            blocks.insert(0, JSON_VALUE)
        imports = _imports(unit.path, writer.used - set(own), owner)
        out[unit.path] = "\n".join([_header(unit), *([imports] if imports else []), *blocks])
    return out


def write(src: Path, units: tuple[Unit, ...] = UNITS) -> list[Path]:
    """Write the generated files under ``src`` (``labextension/src``); return their paths."""
    written = []
    for relative, text in generate(units).items():
        target = src / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _schema(root: Root) -> Schema:
    schema = TypeAdapter(root.annotation).json_schema(mode=root.mode)
    if "properties" in schema:  # a model's schema is its own, inline: make it a $def too
        defs = schema.pop("$defs", {})
        defs[schema["title"]] = schema
        schema = {"$ref": f"#/$defs/{schema['title']}", "$defs": defs}
    for name, node in schema.get("$defs", {}).items():
        node["x-required-all"] = root.mode == "serialization"
        _add_docstrings(name, node)
    return schema


def _is_alias(root: Root, schema: Schema) -> bool:
    """Whether ``root`` names a union (a model is declared under its own name)."""
    return _ref_name(schema.get("$ref", "")) != root.name


def _members(schema: Schema) -> frozenset[str]:
    options = schema.get("oneOf") or schema.get("anyOf") or []
    return frozenset(_ref_name(option.get("$ref", "")) for option in options)


def _check_same(name: str, node: Schema, first: Schema) -> None:
    if _shape(node) != _shape(first):
        raise ValueError(
            f"{name} has two shapes (its validation and serialization schemas differ): "
            "declare it from one mode only, or give the two their own names"
        )


def _shape(node: Schema) -> Schema:
    return {k: v for k, v in node.items() if k not in ("x-required-all", "required")}


def _header(unit: Unit) -> str:
    sources = ", ".join(_source_path(module) for module in unit.sources)
    return (
        "// Generated by scripts/generate_typescript.py from the pydantic models in "
        f"{sources}.\n"
        "// Do not edit by hand: change the models and run the script again.\n"
    )


def _source_path(module: ModuleType) -> str:
    return module.__name__.replace(".", "/") + ".py"


def _imports(path: str, names: set[str], owner: Mapping[str, str]) -> str:
    by_file: dict[str, list[str]] = {}
    for name in sorted(names):
        by_file.setdefault(owner[name], []).append(name)
    lines = []
    for target, imported in sorted(by_file.items()):
        source = _relative(path, target)
        line = f'import type {{ {", ".join(imported)} }} from "{source}";'
        if len(line) > 100:
            listed = "".join(f"  {n},\n" for n in imported)
            line = f'import type {{\n{listed}}} from "{source}";'
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def _relative(source: str, target: str) -> str:
    up = source.count("/")
    prefix = "../" * up if up else "./"
    return prefix + target.removesuffix(".ts")


class _Writer:
    """Declarations of one file; notes the names they use, for its imports."""

    def __init__(self, unions: Mapping[frozenset[str], str]) -> None:
        self.unions = unions
        """Named unions by their members: an inlined union is written as its name."""
        self.used: set[str] = set()

    def declaration(self, name: str, node: Schema) -> str:
        doc = _comment(node.get("description"), "")
        if node.get("type") == "object" and "properties" in node:
            required = set(node.get("required", []))
            lines = [f"export interface {name} {{"]
            for prop, sub in node["properties"].items():
                comment = _comment(sub.get("description"), "  ")
                if comment:
                    lines.append(comment.rstrip("\n"))
                optional = "" if node["x-required-all"] or prop in required else "?"
                lines.append(f"  {prop}{optional}: {self.type(sub)};")
            lines.append("}")
            return doc + "\n".join(lines) + "\n"
        return doc + f"export type {name} = {self.type(node)};\n"

    def union(self, schema: Schema, name: str) -> str:
        options = schema.get("oneOf") or schema.get("anyOf") or [schema]
        return "\n".join(f"  | {self.type(option, skip=name)}" for option in options)

    def type(self, node: Schema, *, skip: str = "") -> str:
        if "$ref" in node:
            return self.name(_ref_name(node["$ref"]))
        if "const" in node:
            return json.dumps(node["const"])
        if "enum" in node:
            return " | ".join(json.dumps(v) for v in node["enum"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                named = self.unions.get(_members(node))
                if named is not None and named != skip:
                    return self.name(named)
                return " | ".join(self.type(option) for option in node[key])
        kind = node.get("type")
        if kind == "array":
            inner = self.type(node.get("items", {}))
            return f"({inner})[]" if "|" in inner else f"{inner}[]"
        if kind == "object":
            values = node.get("additionalProperties")
            inner = self.type(values) if isinstance(values, dict) else self.name("JsonValue")
            return f"Record<string, {inner}>"
        scalar = {
            "string": "string",
            "integer": "number",
            "number": "number",
            "boolean": "boolean",
            "null": "null",
        }.get(kind or "")
        return scalar if scalar is not None else self.name("JsonValue")

    def name(self, name: str) -> str:
        self.used.add(name)
        return name


def _comment(text: str | None, indent: str) -> str:
    """A doc comment (with its newline), or "" when there is no text."""
    if not text:
        return ""
    lines = inspect.cleandoc(text).replace("*/", "*\\/").splitlines()
    if len(lines) == 1:
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} *{' ' + line if line else ''}\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


# Docstrings. pydantic puts a model's docstring in its schema, and a field's attribute
# docstring only when the model sets ``use_attribute_docstrings``; the others are read here
# from the source, so every model's field docs reach TypeScript without a config change.


def _add_docstrings(name: str, node: Schema) -> None:
    cls = _classes().get(name)
    if cls is None:
        return
    if not node.get("description") or _is_dataclass_signature(cls, node["description"]):
        doc = cls.__dict__.get("__doc__")
        if doc and not _is_dataclass_signature(cls, doc):
            node["description"] = doc
        else:
            node.pop("description", None)
    docs = _attribute_docs(cls)
    for prop, sub in node.get("properties", {}).items():
        if not sub.get("description") and prop in docs:
            sub["description"] = docs[prop]


def _is_dataclass_signature(cls: type, doc: str) -> bool:
    """Whether ``doc`` is the one ``dataclass`` makes up for a class without a docstring."""
    return is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")


@cache
def _classes_in(module: ModuleType) -> Mapping[str, type]:
    found: dict[str, type] = {}
    for value in vars(module).values():
        if inspect.isclass(value) and value.__module__.startswith("boonb."):
            found.setdefault(value.__name__, value)
    return found


@cache
def _classes() -> Mapping[str, type]:
    """The classes of boonb the units can reach: those their modules define or import, transitively.

    Breadth first, so a name means the class the units' own modules use.
    """
    pending = [module for unit in UNITS for module in unit.sources]
    seen: set[str] = set()
    found: dict[str, type] = {}
    while pending:
        module = pending.pop(0)
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        for name, cls in _classes_in(module).items():
            found.setdefault(name, cls)
            pending.append(sys.modules[cls.__module__])
    return found


@cache
def _attribute_docs(cls: type) -> Mapping[str, str]:
    """Field docstrings (a string right under an annotated field) of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("boonb."):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        if not isinstance(body, ast.ClassDef):
            continue
        for field_node, doc_node in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(field_node, ast.AnnAssign)
                and isinstance(field_node.target, ast.Name)
                and isinstance(doc_node, ast.Expr)
                and isinstance(doc_node.value, ast.Constant)
                and isinstance(doc_node.value.value, str)
            ):
                docs[field_node.target.id] = doc_node.value.value
    return docs
