"""boonb's JupyterLab extension in a real Lab: it loads, its sidebar shows the project's chats,
background tasks and workflow runs (read over REST from the project database, which a real
kernel filled with boonb's own code on the simulator), its panels open in the main area and
come back after a reload, and its commands are in the palette.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from ..lab_page import Notebook, NotebookFactory, wait_for_app
from ..lab_server import LabServer

SHOTS_DIR = Path("/work/notes/shots")

#: One chat, one background task and one workflow run, all ended, in the project database.
FILL_PROJECT = """
%load_ext boonb
import boonb
from boonb.runtime import get_runtime
rt = get_runtime()
agent = boonb.new_agent()
boonb.start(agent, "Say hello to the sidebar")
task = boonb.spawn("Count to three", metadata={"name": "sidebar task"})
task.wait(60)
"""

RUN = '%%workflow\nresult = "the sidebar run"'

COMMANDS = {
    "boonb:open-sidebar": "Open the boonb Sidebar",
    "boonb:open-chat": "Open a Chat's Traces by Id…",
    "boonb:show-tasks": "Show Background Tasks",
    "boonb:open-orchestrator": "Open the Orchestrator",
}

LONG_MS = 60_000


def fill_project(notebook: NotebookFactory) -> Notebook:
    nb = notebook.open("lab-sidebar.ipynb")
    nb.run_cell(FILL_PROJECT)
    nb.run_cell(RUN)
    nb.run_cell("rt.store.writer.flush()")
    return nb


def execute(page: Page, command: str, args: dict[str, str] | None = None) -> None:
    page.evaluate(
        "([id, args]) => { void window.jupyterapp.commands.execute(id, args); }",
        [command, args or {}],
    )


def sidebar(page: Page) -> Locator:
    return page.locator("#boonb-sidebar")


def section(page: Page, name: str) -> Locator:
    return sidebar(page).locator(f'.boonb-sb-section[data-section="{name}"]')


def test_sidebar_shows_the_projects_chats_tasks_and_runs_and_opens_a_chats_traces(
    page: Page, lab: LabServer, notebook: NotebookFactory, console_errors: list[str]
) -> None:
    nb = fill_project(notebook)
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="boonb-sidebar"]')
    expect(tab).to_be_visible()
    tab.click()
    expect(sidebar(page)).to_be_visible()
    for name in ("chats", "tasks", "runs"):
        expect(section(page, name)).to_have_count(1)

    chats = section(page, "chats")
    # The user's own chat (a finished chat awaits input); a subagent's is under its task.
    titles = chats.locator(".boonb-chat .boonb-row-title")
    chat = chats.locator(".boonb-chat").filter(has_text="Say hello to the sidebar")
    expect(chat).to_have_count(1, timeout=LONG_MS)
    expect(chat.locator(".boonb-state")).to_have_text("awaiting input")
    tasks = section(page, "tasks")
    expect(tasks.locator(".tk-entry").filter(has_text="sidebar task")).to_have_count(1)
    run = section(page, "runs").locator(".boonb-run").first
    expect(run).to_be_visible()
    expect(run.locator(".boonb-state")).to_have_text("completed")

    chats.locator(".boonb-list-search").fill("no such title anywhere")
    expect(chats.locator(".boonb-list-message")).to_have_text("No chat matches.")
    chats.locator(".boonb-list-search").fill("hello to the side")
    expect(titles).to_have_text(["Say hello to the sidebar"])

    chat_id = chat.get_attribute("data-chat-id")
    chat.click()
    panel = page.locator(f'.boonb-lab-panel[data-panel="chat"][data-chat-id="{chat_id}"]')
    expect(panel.locator(".boonb-traceviewer")).to_be_visible()
    expect(panel.locator(".boonb-traceviewer")).to_contain_text("Turn 4", timeout=LONG_MS)
    shoot(page, nb, "lab-sidebar-chat")

    # The layout restorer brings the sidebar and the chat's panel back, once Lab has saved
    # the workspace with them.
    wait_for_saved_workspace(page, lab, f"boonb-chat-{chat_id}")
    page.reload(wait_until="domcontentloaded")
    wait_for_app(page)
    expect(sidebar(page)).to_be_visible()
    expect(panel.locator(".boonb-traceviewer")).to_be_visible(timeout=LONG_MS)
    assert [e for e in console_errors if "boonb" in e] == []


def test_run_row_opens_the_runs_pane_in_the_main_area(
    page: Page, notebook: NotebookFactory
) -> None:
    nb = fill_project(notebook)
    execute(page, "boonb:open-sidebar")
    run = section(page, "runs").locator(".boonb-run").first
    expect(run).to_be_visible(timeout=LONG_MS)
    run.click()
    pane = page.locator('.boonb-lab-panel[data-panel="run"] .boonb-orchestrator[data-mode="run"]')
    expect(pane).to_have_attribute("data-ready", "true", timeout=LONG_MS)
    expect(pane).to_contain_text("the sidebar run")
    shoot(page, nb, "lab-run")

    execute(page, "boonb:open-orchestrator")
    orchestrator = page.locator(
        '.boonb-lab-panel[data-panel="orchestrator"] .boonb-orchestrator[data-mode="orchestrator"]'
    )
    expect(orchestrator).to_have_attribute("data-ready", "true", timeout=LONG_MS)
    expect(orchestrator.locator(".or-run-entry").first).to_be_visible()
    shoot(page, nb, "lab-orchestrator")


def test_tab_badge_counts_the_running_background_tasks(
    page: Page, notebook: NotebookFactory
) -> None:
    nb = notebook.open("lab-badge.ipynb")
    nb.run_cell(
        "%load_ext boonb\nimport boonb\nfrom boonb.runtime import get_runtime\n"
        "sim = get_runtime().simulator()\nsim.latency = 1.5"
    )
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="boonb-sidebar"]')
    expect(tab).not_to_have_attribute("data-running", re.compile(".*"))
    # The cell that spawns it finishing is what makes the sidebar look (no idle timer).
    nb.run_cell("task = boonb.spawn('Count to three', metadata={'name': 'badge task'})")
    expect(tab).to_have_attribute("data-running", "1", timeout=LONG_MS)
    expect(tab).to_have_attribute("title", re.compile("1 background task running"))
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        tab.screenshot(path=SHOTS_DIR / f"lab-badge-{theme}.png")
    nb.set_theme("light")
    expect(tab).not_to_have_attribute("data-running", re.compile(".*"), timeout=LONG_MS)


def test_palette_has_the_boonb_commands(page: Page) -> None:
    for command in COMMANDS:
        assert page.evaluate("id => window.jupyterapp.commands.hasCommand(id)", command)
    palette = page.locator("#command-palette")
    # One search for the category lists them all (each search is a chance for Lab's own
    # restoring of the page to take the focus and close the modal palette).
    page.evaluate("() => window.jupyterapp.restored")  # after that, nothing takes the focus
    items = palette.locator(".lm-CommandPalette-item")
    labels: list[str] = []
    for _ in range(3):  # the modal palette closes if anything takes the focus meanwhile
        search_palette(page, "boonb")
        try:
            expect(items.filter(has_text="Open the boonb Sidebar")).to_have_count(1, timeout=15_000)
        except AssertionError:
            if palette.locator("input").is_visible():
                raise  # open, searched, and the command is not there: a real failure
            continue
        labels = items.all_inner_texts()  # all at once, while it is open
        if palette.locator("input").is_visible():
            break
    missing = [label for label in COMMANDS.values() if not any(label in t for t in labels)]
    assert not missing, (missing, labels)


def search_palette(page: Page, text: str) -> None:
    """Open the command palette and type ``text``. The palette is a modal that closes when
    the focus moves, which Lab's own restoring of the page can do just after it opened:
    then it is opened again (a few times at most)."""
    search = page.locator("#command-palette input")
    for _ in range(3):
        if not search.is_visible():
            execute(page, "apputils:activate-command-palette")
        try:
            search.fill(text, timeout=5_000)
            return
        except PlaywrightTimeoutError:
            continue
    search.fill(text)


def test_open_chat_by_id_refuses_what_is_not_a_chat_id(page: Page) -> None:
    execute(page, "boonb:open-chat")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("not-a-chat")
    dialog.locator("button.jp-mod-accept").click()
    error = page.locator(".jp-Dialog").filter(has_text="Not a chat id")
    expect(error).to_contain_text('"not-a-chat" is not a chat id')
    error.get_by_role("button", name="Close").click()
    # It asks again, with what was typed, so the user can fix it; an id the project does
    # not have is refused with the server's word for it.
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator("input")).to_have_value("not-a-chat")
    dialog.locator("input").fill("00000000-0000-4000-8000-000000000000")
    dialog.locator("button.jp-mod-accept").click()
    refused = page.locator(".jp-Dialog").filter(has_text="The chat cannot be opened")
    expect(refused).to_contain_text("00000000-0000-4000-8000-000000000000")
    refused.get_by_role("button", name="Close").click()
    expect(page.locator(".boonb-lab-panel")).to_have_count(0)


def wait_for_saved_workspace(page: Page, lab: LabServer, text: str) -> None:
    """Until the page's workspace, as the server stored it, mentions ``text``."""
    workspace = page.url.split("/lab/workspaces/", 1)[1].split("?", 1)[0]
    deadline = time.monotonic() + LONG_MS / 1000
    while text not in lab.api("GET", f"/lab/api/workspaces/{workspace}").text:
        assert time.monotonic() < deadline, f"the workspace never saved {text}"
        page.wait_for_timeout(200)


def shoot(page: Page, nb: Notebook, name: str) -> None:
    """The sidebar and the main-area panel, in the light and the dark theme."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        page.screenshot(path=SHOTS_DIR / f"{name}-{theme}.png")
    nb.set_theme("light")
