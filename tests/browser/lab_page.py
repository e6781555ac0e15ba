"""Driving a JupyterLab page: login, artifacts, and a notebook helper.

How cell code gets into a cell: through JupyterLab's own model, not the keyboard. The server
runs with ``--expose-app-in-browser``, so ``window.jupyterapp`` is the Lab application; the
helper inserts a code cell into the notebook's shared model with its source already set and
runs it with the ``notebook:run-cell`` command. Typing into CodeMirror 6 would autoclose
brackets and quotes and auto-indent every new line, so multi-line code with brackets comes out
mangled; the clipboard needs permissions and focus; a notebook written to disk before opening
cannot take cells afterwards. Setting the model is exact, fast and still exercises the real
execute path (session, kernel, iopub, output renderers, widget manager). The command's promise
resolves when the execute reply arrived, which is how a run is known to be finished.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Dialog, Locator, Page

from .lab_server import LabServer

APP_READY_TIMEOUT_MS = 60_000
KERNEL_IDLE_TIMEOUT_S = 60.0
THEMES = {"dark": "JupyterLab Dark", "light": "JupyterLab Light"}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Installed as an init script in every page (also after reloads). Everything reaches the app
#: lazily through ``window.jupyterapp``, which Lab sets once its bundle has loaded.
HELPER_JS = r"""
(() => {
  if (window.__boonb) return;
  const runs = {};
  const app = () => {
    if (!window.jupyterapp) {
      throw new Error('window.jupyterapp is missing: start Lab with --expose-app-in-browser');
    }
    return window.jupyterapp;
  };
  const panel = (path) => {
    for (const w of app().shell.widgets('main')) {
      if (w.context && w.context.path === path && w.sessionContext && w.content) return w;
    }
    return null;
  };
  const need = (path) => {
    const p = panel(path);
    if (!p) throw new Error(`notebook ${path} is not open in this page`);
    return p;
  };
  const kernel = (path) => need(path).sessionContext.session?.kernel ?? null;
  window.__boonb = {
    async appReady() {
      await app().restored;
      return true;
    },
    async open(path) {
      const a = app();
      await a.restored;
      let p = panel(path);
      if (!p) p = await a.commands.execute('docmanager:open', {path, factory: 'Notebook'});
      await p.context.ready;
      a.shell.activateById(p.id);
      // A stable hook for locators: the panel's id changes on every page load, its path not.
      p.node.dataset.boonbPath = path;
      await p.sessionContext.ready;
      return p.id;
    },
    kernelState(path) {
      const p = panel(path);
      if (!p) return 'not-open';
      const k = p.sessionContext.session?.kernel;
      if (!k) return 'no-kernel';
      return `${k.status}/${k.connectionStatus}`;
    },
    startRun(path, source, runId) {
      const a = app();
      const p = need(path);
      a.shell.activateById(p.id);
      const nb = p.content;
      const cells = nb.model.cells;
      const n = cells.length;
      const last = n > 0 ? cells.get(n - 1) : null;
      let index;
      if (last && last.type === 'code' && last.sharedModel.getSource() === ''
          && last.executionCount === null && last.outputs.length === 0) {
        index = n - 1;  // reuse the empty cell a new notebook starts with
        last.sharedModel.setSource(source);
      } else {
        index = n;
        nb.model.sharedModel.insertCell(n, {cell_type: 'code', source, metadata: {}});
      }
      nb.activeCellIndex = index;
      nb.deselectAll();
      runs[runId] = {done: false, index};
      a.commands.execute('notebook:run-cell').then(
        (ok) => { runs[runId] = {done: true, ok: Boolean(ok), index}; },
        (err) => { runs[runId] = {done: true, ok: false, index, failure: String(err)}; },
      );
      return index;
    },
    runDone(runId) {
      return Boolean(runs[runId] && runs[runId].done);
    },
    cellResult(path, index) {
      const cell = need(path).content.model.cells.get(index);
      return {
        executionCount: cell.executionCount,
        outputs: cell.outputs.toJSON(),
      };
    },
    cellCount(path) {
      return need(path).content.model.cells.length;
    },
    async save(path) {
      await need(path).context.save();
    },
    async interrupt(path) {
      const k = kernel(path);
      if (!k) throw new Error(`notebook ${path} has no kernel`);
      await k.interrupt();
    },
    async restart(path) {
      await need(path).sessionContext.restartKernel();
    },
    async userExpression(path, expr) {
      // A silent execute with a user expression: no cell, no history, the repr comes back
      // in the reply. Queued on the shell channel behind any widget messages already sent.
      const k = kernel(path);
      if (!k) throw new Error(`notebook ${path} has no kernel`);
      const reply = await k.requestExecute(
        {code: '', silent: true, store_history: false, user_expressions: {value: expr}},
      ).done;
      const value = reply.content.user_expressions?.value;
      if (!value || value.status !== 'ok') {
        return {ok: false, error: value ? `${value.ename}: ${value.evalue}` : reply.content.status};
      }
      return {ok: true, text: value.data['text/plain']};
    },
    async setTheme(name) {
      // The command's promise resolves once the setting is saved on the server.
      await app().commands.execute('apputils:change-theme', {theme: name});
    },
  };
})();
"""


class CellError(AssertionError):
    """A cell run through the harness raised in the kernel (the message has the traceback)."""


def drop_first_request(kind: str) -> str:
    """A page init script that drops the first widget request of this ``kind`` the page
    sends to a kernel, as a page still reconnecting can lose it (``window.__dropped`` then
    says it happened)."""
    return f"""
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {{
  if (!window.__dropped) {{
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    if (text.includes('"kind":"{kind}"')) {{
      window.__dropped = true;
      return;
    }}
  }}
  return send.call(this, data);
}};
"""


def safe_name(text: str) -> str:
    """A file-name-safe form of a pytest node name (parametrize ids have brackets etc.)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "test"


@dataclass
class PageRecorder:
    """Per-test browser evidence: console output, page errors and screenshots.

    Attached to every page the ``page`` fixture makes, so a failing test leaves a screenshot
    and the console log under ``test-artifacts/browser/`` without having asked for them.
    """

    test_name: str
    artifacts_dir: Path
    console_errors: list[str] = field(default_factory=list)
    """Console messages of type ``error`` and uncaught page exceptions, in order."""
    console_log: list[str] = field(default_factory=list)
    """Every console message, for the failure dump."""

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self._record_error(f"pageerror: {exc}"))
        page.on("dialog", _answer_dialog)

    def _on_console(self, message: ConsoleMessage) -> None:
        location = message.location
        where = f" ({location.get('url', '')}:{location.get('lineNumber', '')})" if location else ""
        line = f"[{message.type}] {message.text}{where}"
        self.console_log.append(line)
        if message.type == "error":
            self.console_errors.append(f"{message.text}{where}")

    def _record_error(self, text: str) -> None:
        self.console_log.append(f"[pageerror] {text}")
        self.console_errors.append(text)

    def path_for(self, label: str, suffix: str) -> Path:
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self.artifacts_dir / f"{safe_name(self.test_name)}-{safe_name(label)}{suffix}"

    def screenshot(self, page: Page, label: str) -> Path:
        """Save ``<test>-<label>.png`` and return its path."""
        path = self.path_for(label, ".png")
        page.screenshot(path=str(path), timeout=15_000)
        return path

    def dump_console(self, label: str) -> Path:
        path = self.path_for(label, ".console.txt")
        path.write_text("\n".join(self.console_log) + "\n")
        return path


def _answer_dialog(dialog: Dialog) -> None:
    # Lab asks "leave page?" when a document is dirty; a dismissed beforeunload would cancel
    # a reload. Any other native dialog is unexpected in Lab and gets dismissed.
    if dialog.type == "beforeunload":
        dialog.accept()
    else:
        dialog.dismiss()


def open_lab(page: Page, lab: LabServer, *, workspace: str) -> None:
    """Log in with the token and wait until the Lab shell is restored and usable.

    Each test gets its own workspace, so nothing a previous test left open is restored
    into its page (and a reload restores exactly this test's layout).
    """
    page.goto(
        f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}",
        wait_until="domcontentloaded",
        timeout=APP_READY_TIMEOUT_MS,
    )
    wait_for_app(page)


def wait_for_app(page: Page) -> None:
    try:
        page.wait_for_function(
            "() => Boolean(window.jupyterapp && window.__boonb)",
            timeout=APP_READY_TIMEOUT_MS,
            polling=100,
        )
        page.evaluate("() => window.__boonb.appReady()")
        page.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=APP_READY_TIMEOUT_MS)
    except Exception as exc:
        raise AssertionError(
            f"JupyterLab did not become ready at {page.url}: {exc}. "
            "Is the server running with --expose-app-in-browser?"
        ) from exc


class Notebook:
    """One notebook open in the test's page, with a kernel.

    Cells are addressed by model index; with windowing off (see lab_server) the DOM has one
    ``.jp-Cell`` per model cell, in order. Locators are lazy and keyed by the notebook path, so
    they stay valid across :meth:`reload`.
    """

    def __init__(self, *, page: Page, lab: LabServer, path: str, recorder: PageRecorder) -> None:
        self.page = page
        self.lab = lab
        self.path = path
        """Path relative to the server root, as the contents API and Lab name it."""
        self._recorder = recorder

    @property
    def file(self) -> Path:
        return self.lab.root / self.path

    @property
    def panel(self) -> Locator:
        return self.page.locator(f'.jp-NotebookPanel[data-boonb-path="{self.path}"]')

    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells().nth(index)

    def output(self, index: int) -> Locator:
        """The output area of cell ``index`` (its rendered outputs, widgets included)."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    def cell_count(self) -> int:
        return int(self.page.evaluate("p => window.__boonb.cellCount(p)", self.path))

    def attach(self, *, timeout: float = KERNEL_IDLE_TIMEOUT_S) -> None:
        """Open (or find the restored) notebook panel in the page and wait for an idle kernel."""
        self.page.evaluate("p => window.__boonb.open(p)", self.path)
        self.wait_idle(timeout=timeout)

    def wait_idle(self, *, timeout: float = KERNEL_IDLE_TIMEOUT_S) -> None:
        """Wait until the kernel is connected and idle."""
        try:
            self.page.wait_for_function(
                "p => window.__boonb.kernelState(p) === 'idle/connected'",
                arg=self.path,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as exc:
            state = self.page.evaluate("p => window.__boonb.kernelState(p)", self.path)
            raise AssertionError(
                f"kernel of {self.path} not idle within {timeout:.0f}s (state: {state})\n"
                f"--- server log ---\n{self.lab.log_tail(30)}"
            ) from exc

    def run_cell(
        self, code: str, *, timeout: float = 90.0, wait: bool = True, allow_error: bool = False
    ) -> Locator:
        """Run ``code`` in a new last cell (or the empty last cell); return its output area.

        Waits for the execute reply (the cell has its execution count). Rendering is async,
        so assert on the returned locator with Playwright's ``expect``, which retries. A cell
        that raises fails the test with the kernel's traceback unless ``allow_error``.
        With ``wait=False`` it returns at once (for interrupt tests); use :meth:`wait_idle`.
        After clicking widgets, see :meth:`wait_for_kernel_value` before relying on the kernel.
        """
        run_id = uuid.uuid4().hex
        index = int(
            self.page.evaluate(
                "([p, src, id]) => window.__boonb.startRun(p, src, id)", [self.path, code, run_id]
            )
        )
        if not wait:
            return self.output(index)
        try:
            self.page.wait_for_function(
                "id => window.__boonb.runDone(id)", arg=run_id, timeout=timeout * 1000, polling=100
            )
        except Exception as exc:
            raise AssertionError(
                f"cell {index} of {self.path} did not finish within {timeout:.0f}s "
                f"(kernel {self.page.evaluate('p => window.__boonb.kernelState(p)', self.path)}):"
                f"\n{code}"
            ) from exc
        result: dict[str, Any] = self.page.evaluate(
            "([p, i]) => window.__boonb.cellResult(p, i)", [self.path, index]
        )
        errors = [o for o in result["outputs"] if o.get("output_type") == "error"]
        if errors and not allow_error:
            traceback = _ANSI.sub("", "\n".join("\n".join(o.get("traceback", [])) for o in errors))
            raise CellError(
                f"cell {index} of {self.path} raised:\n{traceback}\n--- code ---\n{code}"
            )
        if result["executionCount"] is None and not errors:
            raise AssertionError(f"cell {index} of {self.path} finished without an execution count")
        return self.output(index)

    def kernel_value(self, expr: str) -> str:
        """``repr`` of a Python expression in the kernel, without adding a cell.

        Uses ``user_expressions`` of a silent execute request, so the notebook is unchanged.
        """
        result: dict[str, Any] = self.page.evaluate(
            "([p, e]) => window.__boonb.userExpression(p, e)", [self.path, expr]
        )
        if not result["ok"]:
            raise AssertionError(f"evaluating {expr!r} in the kernel failed: {result['error']}")
        return str(result["text"])

    def wait_for_kernel_value(self, expr: str, expected: str, *, timeout: float = 15.0) -> None:
        """Poll ``repr(expr)`` in the kernel until it equals ``expected``.

        Needed after browser-side widget changes: ipywidgets keeps one update per model in
        flight and sends the next only after the kernel's idle for the previous, so a cell
        run right after two quick clicks can still see the first one's value.
        """
        deadline = time.monotonic() + timeout
        seen = self.kernel_value(expr)
        while seen != expected and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = self.kernel_value(expr)
        if seen != expected:
            raise AssertionError(
                f"kernel value of {expr!r} is {seen}, expected {expected} after {timeout:.0f}s"
            )

    def cell_outputs(self, index: int) -> list[dict[str, Any]]:
        """The nbformat outputs of cell ``index`` as the frontend holds them."""
        result: dict[str, Any] = self.page.evaluate(
            "([p, i]) => window.__boonb.cellResult(p, i)", [self.path, index]
        )
        outputs: list[dict[str, Any]] = result["outputs"]
        return outputs

    def screenshot(self, label: str) -> Path:
        """Save ``test-artifacts/browser/<test>-<label>.png``."""
        return self._recorder.screenshot(self.page, label)

    def set_theme(self, theme: str) -> None:
        """Switch Lab's theme ("dark", "light" or a full theme name) and wait until applied."""
        name = THEMES.get(theme, theme)
        self.page.evaluate("name => window.__boonb.setTheme(name)", name)
        self.page.wait_for_function(
            "name => document.body.dataset.jpThemeName === name",
            arg=name,
            timeout=15_000,
            polling=100,
        )
        # Lab covers the page with its splash while a theme loads; a screenshot taken
        # then shows the view dimmed behind it.
        self.page.wait_for_function(
            "() => !document.getElementById('jupyterlab-splash')", timeout=15_000, polling=100
        )

    def save(self) -> None:
        self.page.evaluate("p => window.__boonb.save(p)", self.path)

    def reload(self, *, timeout: float = KERNEL_IDLE_TIMEOUT_S) -> None:
        """Save, refresh the page, reopen this notebook and wait for its (same) kernel.

        Saving first keeps the outputs (widget views reference their model ids there) and
        avoids the "leave page?" prompt; widgets then re-render from the kernel's state.
        """
        self.save()
        self.page.reload(wait_until="domcontentloaded", timeout=APP_READY_TIMEOUT_MS)
        wait_for_app(self.page)
        self.attach(timeout=timeout)

    def interrupt(self) -> None:
        """Interrupt the kernel (the stop button)."""
        self.page.evaluate("p => window.__boonb.interrupt(p)", self.path)

    def restart_kernel(self, *, timeout: float = KERNEL_IDLE_TIMEOUT_S) -> None:
        """Restart the kernel without the confirmation dialog and wait until it is idle."""
        self.page.evaluate("p => window.__boonb.restart(p)", self.path)
        self.wait_idle(timeout=timeout)


def empty_notebook() -> dict[str, Any]:
    """An nbformat 4 notebook naming the python3 kernel, so Lab starts it without asking."""
    return {
        "cells": [],
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@dataclass
class NotebookFactory:
    """The ``notebook`` fixture: opens notebooks in the test's page and cleans up after it.

    Notebooks go in a folder named after the test, so tests sharing the session's server
    never see each other's files or kernels.
    """

    page: Page
    lab: LabServer
    recorder: PageRecorder
    folder: str
    opened: list[Notebook] = field(default_factory=list)

    def open(self, name: str, *, timeout: float = KERNEL_IDLE_TIMEOUT_S) -> Notebook:
        """Create an empty notebook ``<test folder>/<name>``, open it, wait for an idle kernel."""
        path = f"{self.folder}/{name}"
        self.lab.api("PUT", f"/api/contents/{self.folder}", json={"type": "directory"})
        response = self.lab.api(
            "PUT",
            f"/api/contents/{path}",
            content=json.dumps({"type": "notebook", "format": "json", "content": empty_notebook()}),
        )
        if response.status_code not in (200, 201):
            raise AssertionError(f"could not create {path}: {response.status_code} {response.text}")
        nb = Notebook(page=self.page, lab=self.lab, path=path, recorder=self.recorder)
        nb.attach(timeout=timeout)
        self.opened.append(nb)
        return nb

    def close(self) -> None:
        if self.opened:
            self.lab.shutdown_sessions(path_prefix=f"{self.folder}/")


ScreenshotFn = Callable[[str], Path]
