"""``notebook_vars``: a read-only look at the notebook's variables.

The user's objects are arbitrary code: a property may raise, a ``__repr__`` may fail or
be huge. Only attribute reads, ``len`` and a capped ``repr`` are used, each guarded, and
numpy/pandas are never imported: their objects are recognised by ``shape``/``dtype``.
"""

from __future__ import annotations

import fnmatch
import reprlib
import types
from collections.abc import Sized
from typing import Any

from ..context import ToolContext
from ..definition import tool
from ..errors import ToolError

MAX_VARIABLES = 200
MAX_REPR_CHARS = 200
# IPython puts these in every namespace; they say nothing about the user's work.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})

_repr = reprlib.Repr()
_repr.maxstring = MAX_REPR_CHARS
_repr.maxother = MAX_REPR_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 10


@tool(kernel_only=True)  # the notebook's namespace is the kernel's
def notebook_vars(context: ToolContext, name_filter: str | None = None) -> dict[str, Any]:
    """List the notebook's variables: name, type, shape/dtype or length, and a short repr.

    Private names (starting with '_') and imported modules are left out.

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        name_filter: Only names containing this text (case-insensitive), or matching it
            as a shell-style pattern if it contains '*' or '?'.

    """
    if context.user_ns is None:
        raise ToolError(
            "no notebook namespace is available here (the agent is not running "
            "inside a kernel), so there are no variables to show"
        )
    names = [name for name in list(context.user_ns) if _wanted(name, name_filter)]
    variables: list[dict[str, Any]] = []
    for name in sorted(names):
        try:
            value = context.user_ns[name]
        except KeyError:
            continue  # deleted by the running cell since we listed the names
        if isinstance(value, types.ModuleType):
            continue
        if len(variables) == MAX_VARIABLES:
            break
        variables.append(describe(name, value))
    result: dict[str, Any] = {
        "variables": variables,
        "truncated": len(variables) == MAX_VARIABLES < len(names),
    }
    if result["truncated"]:
        result["note"] = f"only {MAX_VARIABLES} variables shown; use name_filter to narrow"
    return result


def _wanted(name: str, name_filter: str | None) -> bool:
    if name.startswith("_") or name in _IPYTHON_NAMES:
        return False
    if not name_filter:
        return True
    if any(c in name_filter for c in "*?["):
        return fnmatch.fnmatchcase(name.lower(), name_filter.lower())
    return name_filter.lower() in name.lower()


def describe(name: str, value: Any) -> dict[str, Any]:
    cls = type(value)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    info: dict[str, Any] = {
        "name": name,
        "type": qualname if module in (None, "builtins") else f"{module}.{qualname}",
    }
    shape = _attribute(value, "shape")
    if shape is not None:
        info["shape"] = _shape(shape)
        dtype = _attribute(value, "dtype")
        if dtype is not None:
            info["dtype"] = _safe_str(dtype)
    elif isinstance(value, Sized) and not isinstance(value, type):
        try:
            info["len"] = len(value)
        except Exception:  # user __len__ may raise anything; omit the length
            pass
    info["repr"] = _short_repr(value)
    return info


def _attribute(value: Any, attr: str) -> Any:
    if isinstance(value, type):
        return None  # a class's ``shape`` would be a descriptor, not data
    try:
        return getattr(value, attr, None)
    except Exception:  # a user property may raise anything; treat as absent
        return None


def _shape(shape: Any) -> Any:
    try:
        return [int(n) for n in shape]
    except (TypeError, ValueError):
        return _safe_str(shape)


def _safe_str(value: Any) -> str | None:
    try:
        return str(value)[:MAX_REPR_CHARS]
    except Exception:  # user __str__ may raise anything
        return None


def _short_repr(value: Any) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:  # user __repr__ may raise anything
        return f"<repr failed: {type(exc).__name__}>"
    if len(text) > MAX_REPR_CHARS:
        text = text[: MAX_REPR_CHARS - 3] + "..."
    return text
