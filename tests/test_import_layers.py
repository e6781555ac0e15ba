"""The import contracts of pyproject.toml hold, and would catch an import that breaks them.

Each test runs ``lint-imports`` (what ``make lint`` runs) on a copy of the package in a
temporary directory, first untouched, then with one import added that breaks a layer or
closes a cycle, and reads its verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    c["id"]: c["name"] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
}


def _copy(tmp_path: Path) -> Path:
    """The package and the contracts, alone in a directory that shadows the installed boonb."""
    shutil.copytree(
        ROOT / "boonb",
        tmp_path / "boonb",
        ignore=shutil.ignore_patterns("__pycache__", "static"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(copy: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(copy / "pyproject.toml")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_import(copy: Path, module: str, statement: str) -> None:
    path = copy / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_untouched_package_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # A lower layer reaching up, at import time.
        ("boonb.store.database", "from boonb import runtime", "layers"),
        # ... or only for a type: TYPE_CHECKING imports count too.
        (
            "boonb.agent.loop",
            "import typing\nif typing.TYPE_CHECKING:\n    from boonb.workflow import manager",
            "layers",
        ),
        # ... or inside a function, as the workflow manager once reached the api.
        ("boonb.workflow.manager", "def later():\n    from boonb import api", "layers"),
        # The engine imports nothing of boonb.
        ("boonb.engine", "from boonb import config", "layers"),
        # The simulator and the client it checks share no code.
        ("boonb.sim.server", "from boonb.providers import usage", "layers"),
        # The server extension never starts the kernel side, though it is on top.
        ("boonb.server.handlers", "from boonb.runtime import get_runtime", "server"),
        # The built-in tools must not know the registry that holds them.
        ("boonb.agent.tools.builtins.web", "from ..registry import ToolRegistry", "tools"),
        # Two modules of one layer importing each other.
        ("boonb.workflow.cache", "from boonb.workflow import manager", "acyclic"),
    ],
    ids=["upward", "type-checking", "in-function", "engine", "sim", "server", "builtins", "cycle"],
)
def test_one_added_import_breaks_its_contract(
    tmp_path: Path, module: str, statement: str, broken: str
) -> None:
    copy = _copy(tmp_path)
    _add_import(copy, module, statement)
    result = _lint(copy)
    assert result.returncode != 0, result.stdout
    assert f"{CONTRACTS[broken]} BROKEN" in result.stdout
