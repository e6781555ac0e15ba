"""Hatchling build hook: build labextension/'s two outputs, for wheels and editable installs.

``npm run build`` bundles the widget views into boonb/static/ and builds the prebuilt
JupyterLab extension into boonb/labextension/ (installed as shared-data, see pyproject).
It runs ``npm ci`` first when ``labextension/node_modules`` is missing or older than
``package-lock.json``. The extension's builder needs the jupyterlab Python package, which
the build-system requires: ``BOONB_PYTHON`` tells ``build.mjs`` which Python has it. An
sdist needs no JavaScript built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NpmMissing(RuntimeError):
    """npm is needed to build boonb's widgets and is not on PATH."""


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        labextension = Path(self.root) / "labextension"
        npm = shutil.which("npm")
        if npm is None:
            raise NpmMissing(
                "boonb: building the widgets needs Node.js 20+ and npm, and `npm` is not on "
                "PATH. Install Node.js (e.g. `apt-get install nodejs npm`, or from "
                "https://nodejs.org), then build again."
            )
        if _node_modules_stale(labextension):
            self._run([npm, "ci", "--no-audit", "--no-fund"], labextension)
        self._run([npm, "run", "build"], labextension, env={"BOONB_PYTHON": sys.executable})
        root = Path(self.root)
        expected = [
            *(root / "boonb" / "static" / n for n in _WIDGET_FILES),
            root / "boonb" / "labextension" / "package.json",
        ]
        missing = [str(p.relative_to(root)) for p in expected if not p.is_file()]
        if not list((root / "boonb" / "labextension" / "static").glob("remoteEntry.*.js")):
            missing.append("boonb/labextension/static/remoteEntry.*.js")
        if missing:
            raise RuntimeError(f"boonb: `npm run build` did not produce {', '.join(missing)}")

    def _run(self, command: list[str], cwd: Path, *, env: dict[str, str] | None = None) -> None:
        self.app.display_info(f"boonb: {' '.join(command[1:])} in {cwd}")
        try:
            subprocess.run(command, cwd=cwd, check=True, env={**os.environ, **(env or {})})
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"boonb: `{' '.join(command[1:])}` failed in {cwd} (exit {exc.returncode}); "
                "see the npm output above."
            ) from exc


_WIDGET_FILES = ("traceviewer.js", "traceviewer.css", "chat.js", "chat.css")


def _node_modules_stale(labextension: Path) -> bool:
    """No node_modules, or installed from an older package-lock.json than the one now."""
    installed = labextension / "node_modules" / ".package-lock.json"  # npm writes it
    lock = labextension / "package-lock.json"
    return not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime
