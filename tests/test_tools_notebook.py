"""notebook_vars: a read-only look at a namespace full of awkward objects."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from boonb.agent.tools.builtins import notebook_vars
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.errors import ToolError


class FakeArray:
    """Looks like a numpy array to anything that only reads attributes."""

    shape = (3, 4)
    dtype = "float64"
    calls = 0

    def __repr__(self) -> str:
        return "FakeArray(...)"

    def __call__(self) -> None:
        FakeArray.calls += 1


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class RaisingShape:
    @property
    def shape(self) -> tuple[int, ...]:
        raise RuntimeError("lazy shape failed")

    def __repr__(self) -> str:
        return "RaisingShape()"


class Huge:
    def __repr__(self) -> str:
        return "x" * 10_000


def run(user_ns: Mapping[str, Any] | None, **arguments: Any) -> Any:
    context = ToolContext(project_root=Path("."), user_ns=user_ns)
    return asyncio.run(notebook_vars.invoke(arguments, context))


@pytest.fixture
def namespace() -> dict[str, Any]:
    return {
        "numbers": [1, 2, 3],
        "config": {"a": 1, "b": 2},
        "arr": FakeArray(),
        "os": os,
        "_private": 1,
        "_": "last output",
        "In": ["", "x = 1"],
        "Out": {},
        "get_ipython": lambda: None,
        "exit": None,
        "quit": None,
        "broken": BadRepr(),
        "lazy": RaisingShape(),
        "huge": Huge(),
    }


def by_name(result: Any) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in result["variables"]}


def test_lists_public_variables_only(namespace: dict[str, Any]) -> None:
    names = list(by_name(run(namespace)))
    assert names == ["arr", "broken", "config", "huge", "lazy", "numbers"]


def test_describes_containers_with_len_and_repr(namespace: dict[str, Any]) -> None:
    variables = by_name(run(namespace))
    assert variables["numbers"] == {
        "name": "numbers",
        "type": "list",
        "len": 3,
        "repr": "[1, 2, 3]",
    }
    assert variables["config"]["type"] == "dict"
    assert variables["config"]["len"] == 2
    assert variables["config"]["repr"] == "{'a': 1, 'b': 2}"


def test_array_like_objects_get_shape_and_dtype(namespace: dict[str, Any]) -> None:
    arr = by_name(run(namespace))["arr"]
    assert arr["shape"] == [3, 4]
    assert arr["dtype"] == "float64"
    assert arr["type"].endswith("FakeArray")
    assert arr["repr"] == "FakeArray(...)"
    assert FakeArray.calls == 0  # described, never called


def test_raising_repr_and_property_are_survived(namespace: dict[str, Any]) -> None:
    variables = by_name(run(namespace))
    # reprlib falls back to the class name and id when __repr__ raises.
    assert variables["broken"]["repr"].startswith("<BadRepr instance at 0x")
    assert "shape" not in variables["lazy"]
    assert variables["lazy"]["repr"] == "RaisingShape()"


def test_repr_is_capped(namespace: dict[str, Any]) -> None:
    assert len(by_name(run(namespace))["huge"]["repr"]) <= 200


def test_result_is_json_serialisable(namespace: dict[str, Any]) -> None:
    json.dumps(run(namespace))


def test_name_filter_by_substring_and_pattern(namespace: dict[str, Any]) -> None:
    assert list(by_name(run(namespace, name_filter="NUM"))) == ["numbers"]
    assert list(by_name(run(namespace, name_filter="*r"))) == ["arr"]
    assert list(by_name(run(namespace, name_filter="_priv"))) == []


def test_namespace_is_not_mutated(namespace: dict[str, Any]) -> None:
    before = dict(namespace)
    run(namespace)
    assert namespace == before


def test_no_namespace_is_a_clear_error() -> None:
    with pytest.raises(ToolError, match="no notebook namespace is available"):
        run(None)
