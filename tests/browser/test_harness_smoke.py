"""The browser harness itself works: server auth, running cells, widgets, theme, reload."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from .lab_page import CellError, NotebookFactory
from .lab_server import LabServer

COUNTER_WIDGET = '''
import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    export default {
      render({ model, el }) {
        const button = document.createElement("button");
        button.className = "harness-counter";
        const show = () => { button.textContent = `count is ${model.get("count")}`; };
        button.addEventListener("click", () => {
          model.set("count", model.get("count") + 1);
          model.save_changes();
        });
        model.on("change:count", show);
        show();
        el.appendChild(button);
        return () => model.off("change:count", show);
      }
    };
    """
    count = traitlets.Int(0).tag(sync=True)


counter = Counter()
counter
'''


def test_lab_api_requires_the_token(lab: LabServer) -> None:
    assert lab.api("GET", "/api/status").status_code == 200
    assert httpx.get(f"{lab.url}/api/status").status_code == 403
    wrong = httpx.get(f"{lab.url}/api/status", headers={"Authorization": "token not-it"})
    assert wrong.status_code == 403


def test_cells_run_verbatim_in_a_simulator_only_kernel(
    lab: LabServer, notebook: NotebookFactory
) -> None:
    nb = notebook.open("cells.ipynb")
    expect(nb.run_cell("print(1+1)")).to_have_text("2")
    # Brackets, quotes and indentation arrive verbatim (no editor autoclose or autoindent).
    code = (
        "def shape(xs):\n"
        "    return {'n': len(xs), 'pairs': [(x, x * 2) for x in xs if x % 2]}\n"
        "\n"
        "print(shape([1, 2, 3]))"
    )
    expect(nb.run_cell(code)).to_have_text("{'n': 3, 'pairs': [(1, 2), (3, 6)]}")
    # The kernel sees no API keys (so boonb uses its simulator) and the test project.
    out = nb.run_cell(
        "import os\n"
        "print([k for k in ('DEEPSEEK_API_KEY', 'OPENAI_API_KEY') if k in os.environ])\n"
        "print(os.environ['BOONB_PROJECT'])"
    )
    expect(out).to_have_text(f"[]\n{lab.root}\n")
    assert nb.cell_count() == 3

    with pytest.raises(CellError, match="boom from the kernel"):
        nb.run_cell("raise ValueError('boom from the kernel')")
    expect(nb.run_cell("1/0", allow_error=True)).to_contain_text("ZeroDivisionError")


def test_anywidget_renders_and_round_trips_then_survives_reload(
    notebook: NotebookFactory, console_errors: list[str]
) -> None:
    nb = notebook.open("widget.ipynb")
    out = nb.run_cell(COUNTER_WIDGET)
    button = out.locator("button.harness-counter")
    expect(button).to_have_text("count is 0")

    button.click()
    button.click()
    expect(button).to_have_text("count is 2")
    # Browser -> kernel: the trait changed on the Python side.
    nb.wait_for_kernel_value("counter.count", "2")
    expect(nb.run_cell("print(counter.count)")).to_have_text("2")
    # Kernel -> browser: a Python-side change reaches the view.
    nb.run_cell("counter.count = 10")
    expect(button).to_have_text("count is 10")

    nb.set_theme("dark")
    expect(nb.page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark")
    nb.screenshot("dark")

    nb.reload()
    # The saved output holds only the model id; the view comes back from the kernel's state.
    expect(nb.output(0).locator("button.harness-counter")).to_have_text("count is 10")
    expect(nb.page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark")
    assert not [e for e in console_errors if "anywidget" in e.lower() or "widget" in e.lower()]


def test_theme_setting_does_not_leak_between_tests(page: Page) -> None:
    # Runs after the test above switched to dark: the page fixture resets user settings.
    expect(page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Light")


def test_interrupt_stops_a_running_cell_and_restart_clears_state(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("interrupt.ipynb")
    nb.run_cell("x = 41")
    out = nb.run_cell("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", wait=False)
    expect(out).to_contain_text("sleeping")
    nb.interrupt()
    expect(out).to_contain_text("KeyboardInterrupt")
    nb.wait_idle()
    expect(nb.run_cell("print(x + 1)")).to_have_text("42")

    nb.restart_kernel()
    out = nb.run_cell("print('x' in globals())")
    expect(out).to_have_text("False")
