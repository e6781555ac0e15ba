"""Find workflow files and read their declarations without running them.

A workflow file declares a literal ``workflow = {"name", "description", "args"}`` and
defines ``def run(args)``. Discovery reads both from the syntax tree only: a file from
a cloned project or written by a model is never executed here. Sources, highest
precedence first: ``<project>/.boocode/workflows``, ``~/.boocode/workflows``, and the
built-in catalog shipped with boonb.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from boonb.errors import WorkflowError

log = logging.getLogger("boonb.workflow")

Source = Literal["project", "user", "builtin"]
ArgType = Literal["string", "integer", "number", "boolean", "array", "object"]

_PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


class ArgSpec(BaseModel):
    """One declared argument of a workflow."""

    model_config = ConfigDict(extra="forbid")

    type: ArgType = "string"
    description: str = ""
    default: Any = None
    required: bool | None = None
    """Defaults to True when no default is given."""

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


_A_TYPE: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


class Declaration(BaseModel):
    """A workflow file's literal ``workflow = {...}``: its name, description, args and timeout."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = Field(min_length=1)
    args: dict[str, ArgSpec] = {}
    timeout: float | None = Field(default=None, gt=0)
    """Seconds the run may take; the engine's default applies when unset."""


class WorkflowArgsError(WorkflowError, ValueError):
    """The arguments given to a workflow do not match what it declares.

    ``problems`` holds one message per argument at fault (``None``: the arguments as a
    whole), so a form can show each beside its field.
    """

    def __init__(self, message: str, problems: dict[str | None, str] | None = None) -> None:
        super().__init__(message)
        self.problems: dict[str | None, str] = problems or {}


@dataclass(frozen=True)
class WorkflowSpec:
    """A discovered workflow: its declaration, its source text and where it came from."""

    name: str
    description: str
    args: dict[str, ArgSpec]
    source: Source
    path: Path
    code: str
    timeout: float | None = None

    def args_schema(self) -> dict[str, Any]:
        return self._args_model().model_json_schema()

    def validate_args(self, values: dict[str, Any] | None) -> dict[str, Any]:
        """Check run arguments against the declaration; fill in defaults.

        Raises :class:`WorkflowArgsError` naming every argument at fault (its
        ``problems``), each with what to give instead.
        """
        if values is not None and not isinstance(values, dict):
            problem = f"the arguments must be an object of name to value, got {values!r}"
            raise WorkflowArgsError(f"workflow {self.name!r}: {problem}", {None: problem})
        try:
            model = self._args_model().model_validate(values or {})
        except ValidationError as exc:
            problems: dict[str | None, str] = {}
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else None
                problems.setdefault(name, self._problem(name, error))
            text = "; ".join(f"{name or 'args'}: {message}" for name, message in problems.items())
            raise WorkflowArgsError(f"workflow {self.name!r}: {text}", problems) from None
        return model.model_dump()

    def _problem(self, name: str | None, error: ErrorDetails) -> str:
        """A message for one argument that says what to give instead."""
        spec = self.args.get(name) if name is not None else None
        if spec is None:
            known = ", ".join(self.args) or "none"
            return f"{name!r} is not an argument of this workflow; its arguments: {known}"
        if error["type"] == "missing":
            return f"required: give {_A_TYPE[spec.type]}"
        if len(error["loc"]) > 1:  # inside a list or object: pydantic's words say where
            return error["msg"]
        return f"must be {_A_TYPE[spec.type]}, got {error['input']!r}"

    def _args_model(self) -> type[BaseModel]:
        fields: dict[str, Any] = {}
        for name, spec in self.args.items():
            kind: Any = _PYTHON_TYPES[spec.type]
            default = ... if spec.is_required else spec.default
            if not spec.is_required and default is None:
                # Left out, it reads None: a re-run passes that None back, so it is valid.
                kind = kind | None
            fields[name] = (kind, Field(default, description=spec.description or None))
        return create_model(f"{self.name}_args", __config__=ConfigDict(extra="forbid"), **fields)


@dataclass
class Discovery:
    """The result of a scan: workflows by name, and the files skipped with the reason."""

    workflows: dict[str, WorkflowSpec] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class InvalidWorkflowFile(WorkflowError, ValueError):
    """A workflow file that cannot be used; the message says why."""


def builtin_dirs() -> list[Path]:
    """The catalog: inside the installed package, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    return [d for d in (package / "workflows", package.parent / "workflows") if d.is_dir()]


def default_sources(project: Path) -> list[tuple[Source, list[Path]]]:
    return [
        ("project", [project / ".boocode" / "workflows"]),
        ("user", [Path.home() / ".boocode" / "workflows"]),
        ("builtin", builtin_dirs()),
    ]


def discover(sources: Iterable[tuple[Source, list[Path]]]) -> Discovery:
    """Scan every source; a name found in a higher-precedence source wins."""
    found = Discovery()
    for source, directories in sources:
        names_here: dict[str, Path] = {}
        for directory in directories:
            for path in sorted(directory.glob("*.py")) if directory.is_dir() else []:
                try:
                    spec = read_workflow_file(path, source)
                except InvalidWorkflowFile as exc:
                    _skip(found, path, str(exc))
                    continue
                if spec.name in names_here:
                    _skip(
                        found,
                        path,
                        f"duplicate workflow name {spec.name!r} (also in {names_here[spec.name]})",
                    )
                    continue
                names_here[spec.name] = path
                if spec.name in found.workflows:
                    winner = found.workflows[spec.name]
                    log.info("workflow %s in %s is overridden by %s", spec.name, path, winner.path)
                    continue
                found.workflows[spec.name] = spec
                log.info("workflow %s (%s): %s", spec.name, source, spec.description)
    return found


def _skip(found: Discovery, path: Path, reason: str) -> None:
    found.skipped.append((path, reason))
    log.warning("skipped workflow file %s: %s", path, reason)


def read_workflow_file(path: Path, source: Source) -> WorkflowSpec:
    """Read one file's declaration from its syntax tree; raise InvalidWorkflowFile if unusable."""
    try:
        code = path.read_text(encoding="utf-8")
        tree = ast.parse(code, filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidWorkflowFile(f"cannot read it ({exc})") from None
    except SyntaxError as exc:
        raise InvalidWorkflowFile(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    declaration_node = None
    has_run = False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "workflow" for t in node.targets
        ):
            declaration_node = node.value
        elif isinstance(node, ast.FunctionDef) and node.name == "run":
            has_run = len(node.args.args) == 1
    if declaration_node is None:
        raise InvalidWorkflowFile("no top-level `workflow = {...}` declaration")
    if not has_run:
        raise InvalidWorkflowFile("no top-level `def run(args)` taking one argument")
    try:
        raw = ast.literal_eval(declaration_node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InvalidWorkflowFile(
            "`workflow` must be a literal dict (no names, calls or expressions)"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidWorkflowFile("`workflow` must be a dict")
    try:
        declaration = Declaration.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidWorkflowFile(f"bad declaration: {problems}") from None
    return WorkflowSpec(
        name=declaration.name,
        description=declaration.description,
        args=declaration.args,
        source=source,
        path=path,
        code=code,
        timeout=declaration.timeout,
    )
