"""A throwaway JupyterLab server for the browser tests.

One server per pytest session: starting Lab costs several seconds on a 2-core machine, and
every test gets its own notebook file, page and kernel anyway. Everything the server writes
(settings, workspaces, runtime files, IPython history) goes to a temp dir, so the tests never
read or change the developer's own Jupyter setup, and the kernels run boonb's offline
simulator because no API key reaches them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: Environment variables that would make kernels talk to a real model or another project.
_SCRUBBED_ENV = (
    "DEEPSEEK_API_KEY",
    "OPENAI_API_KEY",
    "BOONB_DB_PATH",
    "BOONB_PROVIDER",
    "BOONB_MODEL",
    "BOONB_BASE_URL",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTERLAB_SETTINGS_DIR",
    "JUPYTERLAB_WORKSPACES_DIR",
    "JUPYTER_TOKEN",
)

#: User settings written before Lab starts. Each entry is a plugin id and its settings.
BASE_USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No "Would you like to receive official Jupyter news?" toast, no update check: both
    # would reach for the internet and the toast can cover what a test clicks.
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Lab 4 virtualises long notebooks (content-visibility / windowing); with "none" every
    # cell is in the DOM, so `.jp-Cell` nth(i) is always model cell i.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class LabStartError(RuntimeError):
    """JupyterLab did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the server is told not to retry others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings_file(settings_dir: Path, plugin_id: str) -> Path:
    package, plugin = plugin_id.split(":", 1)
    return settings_dir / package / f"{plugin}.jupyterlab-settings"


@dataclass
class LabServer:
    """A running JupyterLab server: where it is, how to authenticate, and its files."""

    url: str
    """Base URL without a trailing slash, e.g. ``http://127.0.0.1:PORT``."""
    token: str
    root: Path
    """The server's root dir (notebooks live here); also the kernels' ``BOONB_PROJECT``."""
    state_dir: Path
    """Settings, workspaces, runtime files and the server log (outside ``root``)."""
    process: subprocess.Popen[bytes]
    log_path: Path
    _client: httpx.Client = field(repr=False)

    @property
    def settings_dir(self) -> Path:
        return self.state_dir / "user-settings"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the server's REST API with the token (``path`` like ``/api/contents/x``)."""
        return self._client.request(method, path, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(server log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def reset_user_settings(self) -> None:
        """Drop settings a test changed (e.g. the theme), so the next test starts from the base.

        Lab's settings handler reads the files on every request, so deleting them is enough.
        """
        keep = {_settings_file(self.settings_dir, pid) for pid in BASE_USER_SETTINGS}
        for path in self.settings_dir.rglob("*.jupyterlab-settings"):
            if path not in keep:
                path.unlink()
        _write_base_settings(self.settings_dir)

    def shutdown_sessions(self, *, path_prefix: str = "") -> None:
        """Shut down the kernel sessions of notebooks under ``path_prefix`` (all by default).

        Each browser test starts a kernel; on a 2-core machine leaving them running slows
        every later test down.
        """
        response = self.api("GET", "/api/sessions")
        response.raise_for_status()
        for session in response.json():
            if str(session.get("path", "")).startswith(path_prefix):
                self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> None:
        """Ask the server to shut down (it stops its kernels), then kill what is left."""
        try:
            if self.process.poll() is None:
                try:
                    self.api("POST", "/api/shutdown", timeout=5)
                except httpx.HTTPError:
                    pass  # already going away, or hung: the signals below handle both
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    _kill_group(self.process, signal.SIGTERM)
                    try:
                        self.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        _kill_group(self.process, signal.SIGKILL)
                        self.process.wait(timeout=5)
            # Kernels share the server's process group; make sure none outlives the session.
            _kill_group(self.process, signal.SIGKILL)
        finally:
            self._client.close()


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _write_base_settings(settings_dir: Path) -> None:
    for plugin_id, values in BASE_USER_SETTINGS.items():
        path = _settings_file(settings_dir, plugin_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def lab_environment(*, root: Path, state_dir: Path) -> dict[str, str]:
    """The server's (and so its kernels') environment: isolated dirs, offline simulator."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        BOONB_PROJECT=str(root),
        JUPYTER_CONFIG_DIR=str(state_dir / "config"),
        JUPYTER_DATA_DIR=str(state_dir / "data"),
        JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"),
        IPYTHONDIR=str(state_dir / "ipython"),
        # Some Jupyter components ask the platform for dirs; keep them inside state_dir.
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_lab(*, root: Path, state_dir: Path, timeout: float = START_TIMEOUT_S) -> LabServer:
    """Start ``python -m jupyterlab`` on a free loopback port and wait for ``/api/status``.

    ``--expose-app-in-browser`` puts the app on ``window.jupyterapp``; the page helpers use
    it to set cell sources and run commands instead of typing into the editor.
    """
    root.mkdir(parents=True, exist_ok=True)
    settings_dir = state_dir / "user-settings"
    workspaces_dir = state_dir / "workspaces"
    for d in (settings_dir, workspaces_dir):
        d.mkdir(parents=True, exist_ok=True)
    _write_base_settings(settings_dir)

    token = secrets.token_hex(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--expose-app-in-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
        "--LabApp.news_url=None",
        # The default "pypi" manager queries PyPI from the server; tests stay offline.
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log_path = state_dir / "jupyterlab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=lab_environment(root=root, state_dir=state_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group, so teardown can kill the server and its kernels together.
            start_new_session=True,
        )
    client = httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}, timeout=30.0)
    lab = LabServer(
        url=url,
        token=token,
        root=root,
        state_dir=state_dir,
        process=process,
        log_path=log_path,
        _client=client,
    )
    try:
        _wait_until_ready(lab, timeout=timeout)
    except BaseException:
        lab.stop()
        raise
    return lab


def _wait_until_ready(lab: LabServer, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        code = lab.process.poll()
        if code is not None:
            raise LabStartError(
                f"JupyterLab exited with code {code} before answering.\n"
                f"--- {lab.log_path} ---\n{lab.log_tail()}"
            )
        try:
            response = lab.api("GET", "/api/status", timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.2)
    raise LabStartError(
        f"JupyterLab did not answer /api/status within {timeout:.0f}s ({last_error}).\n"
        f"--- {lab.log_path} ---\n{lab.log_tail()}"
    )
