from __future__ import annotations

import logging
from pathlib import Path

import pytest

from boonb.workflow.discovery import (
    WorkflowArgsError,
    discover,
    read_workflow_file,
)

VALID = """
workflow = {
    "name": "NAME",
    "description": "DESC",
    "args": {"topic": {"type": "string", "description": "what to research"},
             "depth": {"type": "integer", "default": 2}},
}

def run(args):
    return args["topic"]
"""

MARKER = "open('MARKER', 'w').write('ran')\n"


def _write(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text)
    return path


def _valid(name: str, description: str = "does things") -> str:
    return VALID.replace("NAME", name).replace("DESC", description)


def test_a_valid_file_is_discovered_with_its_args_schema(tmp_path: Path) -> None:
    _write(tmp_path / "p", "mine.py", _valid("mine"))
    found = discover([("project", [tmp_path / "p"])])
    spec = found.workflows["mine"]
    assert (spec.source, spec.description) == ("project", "does things")
    schema = spec.args_schema()
    assert schema["required"] == ["topic"] and schema["properties"]["depth"]["default"] == 2
    assert spec.validate_args({"topic": "duckdb"}) == {"topic": "duckdb", "depth": 2}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("workflow = {'name': 'x'}\ndef run(args):\n    pass\n", "description"),
        (
            "NAME = 'x'\nworkflow = {'name': NAME, 'description': 'd'}\ndef run(args):\n    pass\n",
            "literal dict",
        ),
        ("workflow = {'name': 'x', 'description': 'd'}\n", "def run(args)"),
        ("workflow = {'name': 'x', 'description': 'd'\ndef run(args):\n    pass\n", "syntax error"),
        ("def run(args):\n    pass\n", "declaration"),
        (
            "workflow = {'name': 'x', 'description': 'd', 'colour': 1}\ndef run(args):\n    pass\n",
            "colour",
        ),
    ],
    ids=[
        "missing-field",
        "non-literal",
        "no-run",
        "syntax-error",
        "no-declaration",
        "unknown-field",
    ],
)
def test_invalid_files_are_skipped_with_a_warning_and_never_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    text: str,
    reason: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "p", "bad.py", MARKER + text)
    with caplog.at_level(logging.WARNING, logger="boonb.workflow"):
        found = discover([("project", [tmp_path / "p"])])
    assert found.workflows == {}
    assert found.skipped[0][0] == path and reason in found.skipped[0][1]
    assert str(path) in caplog.text and reason in caplog.text
    assert not (tmp_path / "MARKER").exists()


def test_duplicate_names_in_one_source_keep_the_first_and_warn(tmp_path: Path) -> None:
    _write(tmp_path / "p", "a.py", _valid("same", "first"))
    _write(tmp_path / "p", "b.py", _valid("same", "second"))
    found = discover([("project", [tmp_path / "p"])])
    assert found.workflows["same"].description == "first"
    assert "duplicate workflow name 'same'" in found.skipped[0][1]


def test_project_overrides_user_overrides_builtin(tmp_path: Path) -> None:
    _write(tmp_path / "builtin", "w.py", _valid("w", "builtin"))
    _write(tmp_path / "user", "w.py", _valid("w", "user"))
    _write(tmp_path / "user", "u.py", _valid("u", "user only"))
    sources = [
        ("project", [tmp_path / "project"]),
        ("user", [tmp_path / "user"]),
        ("builtin", [tmp_path / "builtin"]),
    ]
    assert discover(sources).workflows["w"].description == "user"  # type: ignore[arg-type]
    _write(tmp_path / "project", "w.py", _valid("w", "project"))
    found = discover(sources)  # type: ignore[arg-type]
    assert found.workflows["w"].description == "project"
    assert found.workflows["u"].source == "user"


def test_bad_run_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    spec = read_workflow_file(_write(tmp_path, "w.py", _valid("w")), "project")
    with pytest.raises(WorkflowArgsError, match="topic: required: give a string"):
        spec.validate_args({})
    with pytest.raises(WorkflowArgsError, match="depth: must be an integer, got 'deep'"):
        spec.validate_args({"topic": "x", "depth": "deep"})
    with pytest.raises(WorkflowArgsError, match="'colour' is not an argument"):
        spec.validate_args({"topic": "x", "colour": "red"})


def test_bad_run_arguments_are_reported_per_argument_all_at_once(tmp_path: Path) -> None:
    spec = read_workflow_file(_write(tmp_path, "w.py", _valid("w")), "project")
    with pytest.raises(WorkflowArgsError) as raised:
        spec.validate_args({"depth": "deep", "colour": "red"})
    assert raised.value.problems == {
        "topic": "required: give a string",
        "depth": "must be an integer, got 'deep'",
        "colour": "'colour' is not an argument of this workflow; its arguments: topic, depth",
    }
    with pytest.raises(WorkflowArgsError) as raised:
        spec.validate_args(["not", "an", "object"])  # type: ignore[arg-type]
    assert list(raised.value.problems) == [None]
