"""Every public class of boonb says what it is for."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import boonb


def public_classes() -> list[type]:
    """Classes a module defines and exposes: in its ``__all__``, or named without ``_``."""
    found: list[type] = []
    modules = [boonb.__name__] + [
        info.name
        for info in pkgutil.walk_packages(boonb.__path__, prefix="boonb.")
        if ".static" not in info.name
    ]
    for name in modules:
        module = importlib.import_module(name)
        exported = set(getattr(module, "__all__", ()))
        for attribute, value in vars(module).items():
            if not inspect.isclass(value) or value.__module__ != name:
                continue
            if attribute in exported or not attribute.startswith("_"):
                found.append(value)
    return found


def own_docstring(cls: type) -> str:
    """The class's own docstring: not a base class's, nor the signature dataclasses write."""
    doc = cls.__dict__.get("__doc__") or ""
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return ""
    return doc.strip()


def test_the_walk_sees_the_classes_the_issue_names() -> None:
    names = {cls.__qualname__ for cls in public_classes()}
    for expected in ("Runtime", "Engine", "Bus", "Writer", "TraceStore", "WorkflowManager"):
        assert expected in names
    assert {"MessageDelta", "TraceRecord", "WorkflowStatus"} <= names  # frames


def test_every_public_class_has_a_docstring() -> None:
    missing = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in public_classes()
        if not own_docstring(cls)
    )
    assert missing == []
