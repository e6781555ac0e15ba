"""The RestrictedPython policy of workflow scripts (runs in the worker).

Two layers live here: a compile-time AST policy (RestrictedPython's transformer, extended
to refuse imports, classes and dangerous builtin names and to inject a step counter) and
the run-time guards RestrictedPython's rewritten code calls (``_getattr_``, ``_getitem_``,
``_write_``, ...). A guard that refuses something calls ``on_violation``, which in the
worker reports the violation and exits the process, so a script cannot catch it.
"""

from __future__ import annotations

import ast
import operator
import types
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    RestrictingNodeTransformer,
    copy_locations,
)

SCRIPT_FILENAME = "<workflow>"
LAST_VALUE = "_last_value_"
"""Where the script entry stores its final expression (a name scripts cannot spell)."""

# Builtins a script may not even mention: naming one is a compile-time violation, so an
# attempt is reported as such rather than as a NameError.
FORBIDDEN_NAMES = frozenset(
    {
        "aiter", "anext", "breakpoint", "bytearray", "callable", "classmethod", "compile",
        "copyright", "credits", "delattr", "dir", "eval", "exec", "exit", "format",
        "getattr", "globals", "hasattr", "help", "id", "input", "issubclass", "iter",
        "license", "locals", "memoryview", "object", "open", "property", "quit", "setattr",
        "staticmethod", "super", "type", "vars",
        # Modules are never reachable (imports are refused); naming one is an attempt.
        "asyncio", "builtins", "ctypes", "gc", "importlib", "inspect", "io", "marshal",
        "multiprocessing", "os", "pathlib", "pickle", "posix", "shutil", "signal", "socket",
        "subprocess", "sys", "threading",
    }
)  # fmt: skip

# Attributes a script may read, by exact type. Anything else, on any object, is refused.
_STR_ATTRS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find",
        "index", "isalnum", "isalpha", "isdecimal", "isdigit", "islower", "isnumeric",
        "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
        "upper", "zfill",
    }
)  # fmt: skip
_LIST_ATTRS = frozenset(
    {"append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove",
     "reverse", "sort"}
)  # fmt: skip
_DICT_ATTRS = frozenset(
    {"clear", "copy", "get", "items", "keys", "pop", "popitem", "setdefault", "update",
     "values"}
)  # fmt: skip
_SET_READ_ATTRS = frozenset(
    {"copy", "difference", "intersection", "isdisjoint", "issubset", "issuperset",
     "symmetric_difference", "union"}
)  # fmt: skip
_SET_ATTRS = _SET_READ_ATTRS | {"add", "clear", "discard", "pop", "remove", "update"}
PLAIN_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: _STR_ATTRS,
    list: _LIST_ATTRS,
    dict: _DICT_ATTRS,
    types.MappingProxyType: frozenset({"copy", "get", "items", "keys", "values"}),
    set: _SET_ATTRS,
    frozenset: _SET_READ_ATTRS,
    tuple: frozenset({"count", "index"}),
    int: frozenset({"bit_length"}),
    bool: frozenset(),
    float: frozenset({"is_integer"}),
}
_EXCEPTION_ATTRS = frozenset({"args"})
_SUBSCRIPTABLE = (dict, list, tuple, str, range, types.MappingProxyType)
_WRITABLE = (dict, list, set)

_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor,
}  # fmt: skip

SAFE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    ArithmeticError, AssertionError, AttributeError, Exception, IndexError, KeyError,
    LookupError, MemoryError, NameError, NotImplementedError, RecursionError, RuntimeError,
    StopIteration, TypeError, ValueError, ZeroDivisionError,
)  # fmt: skip
SAFE_BUILTINS: dict[str, Any] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "chr": chr, "dict": dict,
    "divmod": divmod, "enumerate": enumerate, "filter": filter, "float": float,
    "frozenset": frozenset, "hash": hash, "int": int, "len": len, "list": list, "map": map,
    "max": max, "min": min, "next": next, "ord": ord, "pow": pow, "range": range,
    "repr": repr, "reversed": reversed, "round": round, "set": set, "slice": slice,
    "sorted": sorted, "str": str, "sum": sum, "tuple": tuple, "zip": zip,
    "None": None, "True": True, "False": False,
    **{exc.__name__: exc for exc in SAFE_EXCEPTIONS},
}  # fmt: skip


def _step_call(node: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name("_step_", ast.Load()), args=[], keywords=[])
    copy_locations(call, node)  # type: ignore[arg-type]
    return call


def _step_statement(node: ast.AST) -> ast.Expr:
    statement = ast.Expr(value=_step_call(node))
    copy_locations(statement, node)  # type: ignore[arg-type]
    return statement


class WorkflowPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, narrowed for workflow scripts, plus the step counter.

    ``_step_()`` goes at the head of every ``for``/``while`` body and function body, in
    front of every comprehension's conditions and around every lambda body, so every loop
    iteration and every call of script code counts.
    """

    capture_last_value = False

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in FORBIDDEN_NAMES:
            self.error(node, f'"{node.id}" is not available in workflow scripts.')
        return super().visit_Name(node)

    def visit_Import(self, node: ast.Import) -> Any:
        names = ", ".join(alias.name for alias in node.names)
        self.error(node, f'import statements are not allowed ("import {names}").')
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        module = "." * node.level + (node.module or "")
        self.error(node, f'import statements are not allowed ("from {module} import").')
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, f'class definitions are not allowed ("class {node.name}").')
        return node

    def visit_Global(self, node: ast.Global) -> Any:
        self.not_allowed(node)
        return node

    def visit_For(self, node: ast.For) -> Any:
        new = super().visit_For(node)
        assert isinstance(new, ast.For)
        new.body.insert(0, _step_statement(new))
        return new

    def visit_While(self, node: ast.While) -> Any:
        new = super().visit_While(node)
        assert isinstance(new, ast.While)
        new.body.insert(0, _step_statement(new))
        return new

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        new = super().visit_FunctionDef(node)
        assert isinstance(new, ast.FunctionDef)
        new.body.insert(0, _step_statement(new))
        return new

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        new = super().visit_Lambda(node)
        assert isinstance(new, ast.Lambda)
        # `_step_()` returns True, so `True and body` is the body's value.
        new.body = ast.BoolOp(op=ast.And(), values=[_step_call(new), new.body])
        copy_locations(new.body, node)
        return new

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        new = super().visit_comprehension(node)
        assert isinstance(new, ast.comprehension)
        new.ifs.insert(0, _step_call(new.iter))
        return new

    def visit_Module(self, node: ast.Module) -> Any:
        new = super().visit_Module(node)
        assert isinstance(new, ast.Module)
        if self.capture_last_value and new.body and isinstance(new.body[-1], ast.Expr):
            last = new.body[-1]
            assign = ast.Assign(targets=[ast.Name(LAST_VALUE, ast.Store())], value=last.value)
            copy_locations(assign, last)
            new.body[-1] = assign
        return new


class ScriptPolicy(WorkflowPolicy):
    """A cell body: its last expression statement is the result."""

    capture_last_value = True


class CompileRefused(Exception):
    """The policy refused the source; ``args[0]`` lists every refusal."""


def compile_script(source: str, *, entry: str) -> types.CodeType:
    """Compile under the policy.

    Raises SyntaxError for malformed source (an ordinary failure) and CompileRefused for
    what the policy forbids (a violation).
    """
    tree = ast.parse(source, SCRIPT_FILENAME, "exec")
    policy = ScriptPolicy if entry == "script" else WorkflowPolicy
    compiled = compile_restricted_exec(tree, SCRIPT_FILENAME, policy=policy)
    if compiled.errors or compiled.code is None:
        raise CompileRefused("; ".join(compiled.errors) or "refused")
    return compiled.code


class StepCounter:
    """``_step_``: counts loop iterations and calls; past the budget calls ``on_exhausted``."""

    def __init__(self, budget: int, on_exhausted: Callable[[int], NoReturn]) -> None:
        self.budget = budget
        self.count = 0
        self._on_exhausted = on_exhausted

    def __call__(self) -> bool:
        self.count += 1
        if self.count > self.budget:
            self._on_exhausted(self.budget)
        return True


class Guards:
    """The run-time half of the policy: the names RestrictedPython's code calls."""

    def __init__(
        self,
        *,
        on_violation: Callable[[str], NoReturn],
        log: Callable[[str], None],
        api_attributes: Mapping[type, frozenset[str]],
    ) -> None:
        self._violation = on_violation
        self._log = log
        self._attributes: dict[type, frozenset[str]] = {**PLAIN_ATTRIBUTES, **api_attributes}
        self._safe_types: tuple[type, ...] = (
            *PLAIN_ATTRIBUTES,
            *api_attributes,
            *SAFE_EXCEPTIONS,
        )

    def getattr(self, obj: Any, name: Any) -> Any:
        if type(name) is not str:
            self._violation("attribute names must be plain strings")
        if name.startswith("_") or name in INSPECT_ATTRIBUTES:
            self._violation(f'access to attribute "{name}" is not allowed')
        allowed = self._attributes.get(type(obj))
        if allowed is None and isinstance(obj, BaseException):
            allowed = self._attributes.get(type(obj), _EXCEPTION_ATTRS)
        if allowed is None or name not in allowed:
            self._violation(f'attribute "{name}" of {type(obj).__name__} is not allowed')
        return getattr(obj, name)

    def getitem(self, obj: Any, key: Any) -> Any:
        if not isinstance(obj, _SUBSCRIPTABLE):
            self._violation(f"indexing a {type(obj).__name__} is not allowed")
        return obj[key]

    def write(self, obj: Any) -> Any:
        if type(obj) not in _WRITABLE:
            self._violation(f"modifying a {type(obj).__name__} is not allowed")
        return obj

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        function = _INPLACE_OPS.get(op)
        if function is None:
            self._violation(f"in-place operator {op} is not allowed")
        return function(target, value)

    def apply(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    def isinstance(self, obj: Any, kinds: Any) -> bool:
        members = kinds if isinstance(kinds, tuple) else (kinds,)
        if not all(kind in self._safe_types for kind in members):
            raise TypeError("isinstance() accepts only plain data types and exceptions")
        return isinstance(obj, kinds)

    def printer(self, _getattr_: Any = None) -> _LogPrinter:
        return _LogPrinter(self._log, self._violation)

    def globals(self, api: Mapping[str, Any], step: StepCounter) -> dict[str, Any]:
        builtins = {**SAFE_BUILTINS, "isinstance": self.isinstance}
        return {
            "__builtins__": builtins,
            "__name__": "workflow",
            "_getattr_": self.getattr,
            "_getitem_": self.getitem,
            "_getiter_": iter,
            "_write_": self.write,
            "_inplacevar_": self.inplacevar,
            "_apply_": self.apply,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_print_": self.printer,
            "_step_": step,
            **api,
        }


class _LogPrinter:
    """``print`` in a script: each call becomes one ``log`` line; ``printed`` returns them."""

    def __init__(self, log: Callable[[str], None], on_violation: Callable[[str], NoReturn]) -> None:
        self._log = log
        self._violation = on_violation
        self._lines: list[str] = []

    def _call_print(self, *objects: Any, sep: str = " ", end: str = "\n", **kw: Any) -> None:
        if kw:
            self._violation(f"print() to {', '.join(sorted(kw))}= is not allowed")
        line = str(sep).join(str(item) for item in objects)
        self._lines.append(line + str(end))
        self._log(line)

    def __call__(self) -> str:
        return "".join(self._lines)
