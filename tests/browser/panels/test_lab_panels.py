"""The boonb sidebar as a project-wide view, live: two kernels of one project, each with its
own agents, seen in one JupyterLab page; the running-tasks badge; a chat's traces growing in
the main area while it runs; a cancel from the panel carried out by the owning kernel; the
open panels back after a reload; the dark theme.

Agents run on each kernel's simulator. Their tool waits on a "gate" file the test creates,
so the test decides when a chat or a task moves on (no timing involved).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.kernels import Kernel

from ..lab_page import Notebook, NotebookFactory, wait_for_app
from ..lab_server import LabServer

SHOTS_DIR = Path("/work/notes/shots")
LONG_MS = 60_000

SETUP = '''
%load_ext boonb
import asyncio, pathlib, boonb
from boonb.runtime import get_runtime
from boonb.sim import Rule

GATES = pathlib.Path(r"{gates}")
rt = get_runtime()
sim = rt.simulator()

@boonb.tool
async def wait_for(gate: str) -> str:
    """Waits until the test opens the gate (creates the file of that name)."""
    while not (GATES / gate).exists():
        await asyncio.sleep(0.05)
    return f"gate {{gate}} is open"

def gated(prompt, gate):
    sim.add_rule(Rule(prompt, tool_calls=[{{"name": "wait_for", "arguments": {{"gate": gate}}}}]))
    sim.add_rule(Rule(f"gate {{gate}} is open", role="tool", reply=f"{{prompt}}: done."))
'''


def kernel(notebook: NotebookFactory, name: str, gates: Path) -> Notebook:
    nb = notebook.open(name)
    nb.run_cell(SETUP.format(gates=gates))
    return nb


def run(kernel: Kernel, code: str) -> None:
    """Run a cell in the kernel outside the page; a traceback fails the test."""
    out = kernel.execute(code)
    assert not out["error"], out["error"]


def execute(page: Page, command: str, args: dict[str, str] | None = None) -> None:
    page.evaluate(
        "([id, args]) => { void window.jupyterapp.commands.execute(id, args); }",
        [command, args or {}],
    )


def section(page: Page, name: str) -> Locator:
    return page.locator(f'#boonb-sidebar .boonb-sb-section[data-section="{name}"]')


def tab(page: Page) -> Locator:
    return page.locator('.jp-SideBar .lm-TabBar-tab[data-id="boonb-sidebar"]')


def task_entry(page: Page, title: str) -> Locator:
    return section(page, "tasks").locator(f'.tk-entry:has(.tk-title:text-is("{title}"))')


def test_two_kernels_agents_in_one_sidebar_live_with_badge_traces_cancel_and_reload(
    page: Page,
    notebook: NotebookFactory,
    lab: LabServer,
    tmp_path: Path,
    console_errors: list[str],
) -> None:
    # One kernel behind the page's notebook, another of the same project started apart
    # (as a second Lab tab or a script would run it).
    first = kernel(notebook, "first.ipynb", tmp_path)
    second = Kernel(lab.root)
    try:
        run(second, SETUP.format(gates=tmp_path))
        sidebar_follows_both_kernels(page, first, second, tmp_path, console_errors)
    finally:
        second.stop()


def sidebar_follows_both_kernels(
    page: Page, first: Notebook, second: Kernel, tmp_path: Path, console_errors: list[str]
) -> None:
    execute(page, "boonb:open-sidebar")
    chats = section(page, "chats")
    expect(chats.locator(".boonb-list")).to_have_attribute("data-ready", "true")

    # Each kernel runs an agent: the first one's waits at its tool, the second one's ends.
    first.run_cell(
        'gated("watch the panel", "chat")\n'
        'chat = boonb.start(boonb.new_agent(tools=["wait_for"]), "watch the panel", wait=False)'
    )
    run(second, 'boonb.start(boonb.new_agent(tools=[]), "hello from the second kernel")')
    watched = chats.locator(".boonb-chat").filter(has_text="watch the panel")
    other = chats.locator(".boonb-chat").filter(has_text="hello from the second kernel")
    expect(watched).to_have_count(1, timeout=LONG_MS)
    expect(other).to_have_count(1, timeout=LONG_MS)
    expect(watched).to_have_attribute("data-state", "in_progress")

    # A background task of the second kernel: the badge counts it while it runs.
    run(
        second,
        'gated("background job", "task")\n'
        'job = boonb.spawn("background job", tools=["wait_for"], metadata={"name": "job"})',
    )
    expect(task_entry(page, "job")).to_have_attribute("data-state", "running", timeout=LONG_MS)
    expect(tab(page)).to_have_attribute("data-running", "1", timeout=LONG_MS)
    (tmp_path / "task").touch()
    expect(task_entry(page, "job")).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    expect(tab(page)).not_to_have_attribute("data-running", "1", timeout=LONG_MS)
    assert tab(page).get_attribute("data-running") is None  # no badge at 0

    # The running chat's traces in the main area grow while it runs: its tool call and the
    # model's answer appear once the gate opens.
    chat_id = watched.get_attribute("data-chat-id")
    watched.click()
    panel = page.locator(f'.boonb-lab-panel[data-panel="chat"][data-chat-id="{chat_id}"]')
    viewer = panel.locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=LONG_MS)
    tool_rows = viewer.locator(".tv-trace").filter(has_text="wait_for")
    expect(viewer.locator(".tv-trace").first).to_be_visible()
    expect(tool_rows).to_have_count(0)
    (tmp_path / "chat").touch()
    expect(tool_rows).to_have_count(1, timeout=LONG_MS)
    expect(watched).not_to_have_attribute("data-state", "in_progress", timeout=LONG_MS)
    page.screenshot(path=SHOTS_DIR / "lab-panels-light.png")

    # Cancel from the panel: the first kernel owns the task and carries the cancel out.
    first.run_cell(
        'gated("never ends", "never")\n'
        'stuck = boonb.spawn("never ends", tools=["wait_for"], metadata={"name": "stuck"})'
    )
    stuck = task_entry(page, "stuck")
    expect(stuck).to_have_attribute("data-state", "running", timeout=LONG_MS)
    expect(tab(page)).to_have_attribute("data-running", "1", timeout=LONG_MS)
    stuck.locator("button.tk-cancel").click()
    expect(stuck).to_have_attribute("data-state", "cancelled", timeout=LONG_MS)
    first.wait_for_kernel_value("rt.tasks.get(stuck.task_id).state", "'cancelled'")
    # The badge follows at the sidebar's next activity poll.
    expect(tab(page)).not_to_have_attribute("data-running", "1", timeout=LONG_MS)
    assert tab(page).get_attribute("data-running") is None

    # A reload brings back the sidebar and the chat's panel, read again over REST.
    page.reload(wait_until="domcontentloaded")
    wait_for_app(page)
    expect(section(page, "chats")).to_be_visible(timeout=LONG_MS)
    panel_tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab").filter(
        has_text="Traces: watch the panel"
    )
    # Lab activates the tab it restores last: click ours once its restore is done.
    page.evaluate("() => window.jupyterapp.restored")
    panel_tab.click()
    expect(viewer).to_be_visible(timeout=LONG_MS)
    expect(viewer).to_have_attribute("data-ready", "true", timeout=LONG_MS)
    expect(tool_rows).to_have_count(1)

    # Dark theme: the sidebar and the panel follow Lab's colours.
    first.set_theme("dark")
    panel_tab.click()
    expect(viewer).to_have_attribute("data-theme", "dark")
    expect(viewer).to_be_visible()
    background = page.locator("#boonb-sidebar").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert background != "rgb(255, 255, 255)", background
    page.screenshot(path=SHOTS_DIR / "lab-panels-dark.png")
    assert [e for e in console_errors if "boonb" in e.lower()] == []
