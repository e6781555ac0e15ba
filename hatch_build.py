"""Hatchling build hook: bundle the widget views (labextension/) into boonb/static/.

Runs ``npm ci`` when ``labextension/node_modules`` is missing, then ``npm run build``,
for wheels and editable installs. An sdist needs no JavaScript built.
"""

from __future__ import annotations

import shutil
import subprocess
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
        if not (labextension / "node_modules").is_dir():
            self._run([npm, "ci", "--no-audit", "--no-fund"], labextension)
        self._run([npm, "run", "build"], labextension)
        static = Path(self.root) / "boonb" / "static"
        missing = [
            n
            for n in ("traceviewer.js", "traceviewer.css", "chat.js", "chat.css")
            if not (static / n).is_file()
        ]
        if missing:
            raise RuntimeError(f"boonb: `npm run build` did not produce {', '.join(missing)}")

    def _run(self, command: list[str], cwd: Path) -> None:
        self.app.display_info(f"boonb: {' '.join(command[1:])} in {cwd}")
        try:
            subprocess.run(command, cwd=cwd, check=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"boonb: `{' '.join(command[1:])}` failed in {cwd} (exit {exc.returncode}); "
                "see the npm output above."
            ) from exc
