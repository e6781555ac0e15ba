"""The chat view in a real JupyterLab: refresh mid-session, the turn timeline, follow-ups, theme.

Agents run on the kernel's simulator; rules script what the model does, and a slow
async tool keeps a run in its tool phase long enough to refresh the page under it.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, expect

from .conftest import ARTIFACTS_DIR
from .lab_page import Notebook, NotebookFactory

SETUP = """
%load_ext boonb
import asyncio
import boonb
from boonb.runtime import get_runtime
from boonb.sim import Rule

@boonb.tool
async def wait_a_while(seconds: float) -> str:
    \"\"\"Wait a number of seconds, then say so.\"\"\"
    await asyncio.sleep(seconds)
    return f"waited {seconds} s"

sim = get_runtime().simulator()
sim.clear_rules()
sim.add_rule(Rule("look around", tool_calls=[{"name": "list_files", "arguments": {}}]))
"""

# The second turn calls the slow tool once; the model answers after that.
SLOW_SECOND_TURN = (
    "sim.add_rule(Rule('.', role='tool', times=1, tool_calls=["
    "{'name': 'wait_a_while', 'arguments': {'seconds': %s}}]))"
)

#: A prompt tall enough that the conversation scrolls.
PROMPT = "Please look around the project.\n" + "\n".join(
    f"Line {i} of the brief." for i in range(40)
)


def chat_of(out: Locator) -> Locator:
    chat = out.locator(".boonb-chat")
    expect(chat).to_have_attribute("data-ready", "true", timeout=30_000)
    return chat


def chips(chat: Locator) -> Locator:
    return chat.locator(".chat-timeline .chat-turn-chip")


def start_agent(nb: Notebook, *, slow_seconds: int) -> Locator:
    nb.run_cell(SETUP + SLOW_SECOND_TURN % slow_seconds)
    out = nb.run_cell(f"%%agent --no-wait --max-turns 5\n{PROMPT}")
    expect(out).to_contain_text("AgentHandle")
    return chat_of(out)


def test_a_refreshed_page_shows_the_same_turns_and_pending_tool_calls(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("chat-refresh.ipynb")
    chat = start_agent(nb, slow_seconds=20)
    waiting = chat.locator('.chat-tool[data-status="running"]')
    expect(waiting.locator(".chat-tool-name")).to_have_text("wait_a_while", timeout=30_000)
    expect(chips(chat)).to_have_count(2)
    expect(chat).to_have_attribute("data-state", "in_progress")

    nb.reload()
    chat = chat_of(nb.output(1))
    expect(chat).to_have_attribute("data-state", "in_progress")
    expect(chips(chat)).to_have_count(2)
    expect(chat).to_have_attribute("data-turns", "1,2")
    expect(chat).to_have_attribute("data-pending", "1")
    running = chat.locator('.chat-tool[data-status="running"]')
    expect(running).to_have_count(1)
    expect(running.locator(".chat-tool-name")).to_have_text("wait_a_while")
    done = chat.locator('.chat-turn[data-turn="1"] .chat-tool')
    expect(done).to_have_attribute("data-status", "done")
    expect(done.locator(".chat-tool-name")).to_have_text("list_files")
    expect(chat.locator('.chat-turn[data-turn="1"] .chat-msg-user')).to_contain_text("Line 39")
    expect(chat.locator(".chat-status")).to_contain_text("running")
    expect(chat.locator(".chat-input")).to_be_disabled()
    chip = chat.locator('.chat-turn-chip[data-turn="2"]')
    expect(chip).to_have_class(re.compile(r"\bis-active\b"))
    expect(chip).to_have_class(re.compile(r"\bis-running\b"))
    chat.scroll_into_view_if_needed()
    nb.screenshot("chat-after-refresh")
    chat.screenshot(path=ARTIFACTS_DIR / "chat-widget-after-refresh.png")

    # The run goes on after the refresh and its live frames reach the new view.
    expect(chips(chat)).to_have_count(3, timeout=45_000)
    expect(chat).to_have_attribute("data-state", "awaiting_input", timeout=15_000)
    expect(chat.locator('.chat-tool[data-status="running"]')).to_have_count(0)
    expect(chat.locator('.chat-turn[data-turn="3"] .chat-msg-assistant')).to_contain_text(
        "[simulator]"
    )
    expect(chat.locator(".chat-status")).to_have_text("awaiting input")

    # A resumed session's restart note marks the timeline, live and after a refresh. (The
    # note is what `%agent resume` adds in a new kernel; added here to this live agent.)
    nb.run_cell(
        "from boonb.agent.sessions import RESTART_NOTE\n"
        "rt = get_runtime()\n"
        "rt.chats[rt.last_chat_id].note_restart(RESTART_NOTE)"
    )
    expect(chat.locator('.chat-restart-marker[data-turn="4"]')).to_have_count(1)
    expect(chat.locator('.chat-turn[data-turn="4"] .chat-restart-note')).to_have_count(1)
    nb.reload()
    chat = chat_of(nb.output(1))
    expect(chat.locator('.chat-restart-marker[data-turn="4"]')).to_have_count(1)
    expect(chips(chat)).to_have_count(4)


def test_timeline_click_scrolls_and_folds_and_a_follow_up_runs_a_new_turn(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("chat-timeline.ipynb")
    nb.run_cell(SETUP + SLOW_SECOND_TURN % 3)
    out = nb.run_cell(f"%%agent --max-turns 5\n{PROMPT}", wait=False)
    # Blocking %%agent: the chat view shows the run live while the cell still runs (the
    # kernel answers the view's snapshot request only afterwards).
    chat = out.locator(".boonb-chat")
    running = chat.locator('.chat-tool[data-status="running"] .chat-tool-name')
    expect(running).to_have_text("wait_a_while", timeout=30_000)
    expect(chat).to_have_attribute("data-ready", "false")
    expect(chat.locator(".chat-status")).to_contain_text("running tools")
    nb.wait_idle()
    expect(out).to_contain_text("[simulator]")  # the streamed answer, below the view
    chat = chat_of(out)
    expect(chips(chat)).to_have_count(3)
    expect(chat).to_have_attribute("data-state", "awaiting_input")

    # Each chip: turn number, start time, tool calls, tokens, cache hit rate.
    first = chat.locator('.chat-turn-chip[data-turn="1"]')
    expect(first.locator(".chip-number")).to_have_text("Turn 1")
    expect(first.locator(".chip-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(first.locator(".chip-tools")).to_have_text("1 tool")
    expect(first.locator(".chip-tokens")).to_have_text(re.compile(r"^\d+(\.\d)?K? tok$"))
    expect(chat.locator('.chat-turn-chip[data-turn="3"] .chip-tools')).to_have_text("0 tools")
    expect(chat.locator('.chat-turn-chip[data-turn="3"] .chip-cache')).to_have_text(
        re.compile(r"^cache \d+%$")
    )
    # The active turn is highlighted, past turns dimmed.
    last = chat.locator('.chat-turn-chip[data-turn="3"]')
    expect(last).to_have_class(re.compile(r"\bis-active\b"))
    expect(first).to_have_class(re.compile(r"\bis-past\b"))
    assert float(first.evaluate("el => getComputedStyle(el).opacity")) < 1
    assert float(last.evaluate("el => getComputedStyle(el).opacity")) == 1

    log = chat.locator(".chat-log")
    log.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    assert log.evaluate("el => el.scrollHeight > el.clientHeight + 50")
    first.click()
    expect(chat).to_have_attribute("data-collapsed", "2,3")
    expect(chat).to_have_attribute("data-selected-turn", "1")
    for turn in (2, 3):
        group = chat.locator(f'.chat-turn[data-turn="{turn}"]')
        expect(group).to_have_class(re.compile(r"\bis-collapsed\b"))
        expect(group.locator(".chat-turn-body")).to_be_hidden()
        expect(group.locator(".chat-turn-header")).to_contain_text("folded")
    turn1 = chat.locator('.chat-turn[data-turn="1"]')
    expect(turn1).not_to_have_class(re.compile(r"\bis-collapsed\b"))
    offset = turn1.evaluate(
        "el => el.getBoundingClientRect().top - el.closest('.chat-log').getBoundingClientRect().top"
    )
    assert abs(offset) < 12, offset  # scrolled to the top of turn 1
    chat.screenshot(path=ARTIFACTS_DIR / "chat-widget-folded.png")

    # Folded turns open again: one by its header, the rest with "show all turns".
    chat.locator('.chat-turn[data-turn="2"] .chat-turn-header').click()
    expect(chat).to_have_attribute("data-collapsed", "3")
    chat.locator(".chat-expand-all").click()
    expect(chat).to_have_attribute("data-collapsed", "")
    expect(chat.locator(".chat-turn.is-collapsed")).to_have_count(0)

    # A tool call opens to show its input and output.
    tool = chat.locator('.chat-tool:has(.chat-tool-name:text-is("wait_a_while"))')
    tool.locator(".chat-tool-head").click()
    expect(tool.locator(".chat-tool-input")).to_contain_text('"seconds"')
    expect(tool.locator(".chat-tool-output")).to_have_text("waited 3.0 s")

    # A follow-up typed into the box runs a new turn (the kernel is idle now).
    nb.wait_idle()
    box = chat.locator(".chat-input")
    expect(box).to_be_enabled()
    box.click()
    box.fill("Thanks! Anything else?")
    box.press("Enter")
    expect(chips(chat)).to_have_count(4, timeout=30_000)
    turn4 = chat.locator('.chat-turn[data-turn="4"]')
    expect(turn4.locator(".chat-msg-user")).to_have_text(re.compile("Thanks! Anything else"))
    expect(turn4.locator(".chat-msg-assistant")).to_contain_text(
        "Thanks! Anything else?", timeout=30_000
    )
    expect(chat).to_have_attribute("data-state", "awaiting_input", timeout=15_000)
    expect(chat.locator('.chat-turn-chip[data-turn="4"]')).to_have_class(
        re.compile(r"\bis-active\b")
    )
    expect(box).to_have_value("")
    last_group = turn4.evaluate(
        "el => el.getBoundingClientRect().bottom"
        " - el.closest('.chat-log').getBoundingClientRect().bottom"
    )
    assert abs(last_group) < 24, last_group  # the log followed the new turn to its end
    nb.wait_for_kernel_value(
        "get_runtime().chats[get_runtime().last_chat_id].turn_number", "4", timeout=15
    )

    # Light and dark themes both read well.
    style = """el => {
      const s = getComputedStyle(el);
      return [s.backgroundColor, s.color];
    }"""
    light_bg, light_fg = chat.evaluate(style)
    nb.screenshot("chat-light")
    chat.screenshot(path=ARTIFACTS_DIR / "chat-widget-light.png")
    nb.set_theme("dark")
    expect(chat).not_to_have_css("background-color", light_bg)
    dark_bg, dark_fg = chat.evaluate(style)
    assert dark_bg != light_bg and dark_fg != light_fg
    assert _luminance(dark_bg) < _luminance(light_bg)
    assert _luminance(dark_fg) > _luminance(dark_bg)
    user = chat.locator(".chat-msg-user").first
    user_bg, user_fg = user.evaluate(style)
    assert abs(_luminance(user_fg) - _luminance(user_bg)) > 80, (user_bg, user_fg)
    nb.screenshot("chat-dark")
    chat.screenshot(path=ARTIFACTS_DIR / "chat-widget-dark.png")


def _luminance(css: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
