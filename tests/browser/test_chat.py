"""The chat view in a real JupyterLab: refresh mid-session, the turn timeline, follow-ups, theme.

Agents run on the kernel's simulator; rules script what the model does, and a slow
async tool keeps a run in its tool phase long enough to refresh the page under it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, expect

from .conftest import ARTIFACTS_DIR
from .lab_page import Notebook, NotebookFactory, drop_first_request

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
sim.add_rule(Rule("Anything else", reply="Nothing else for now."))
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


def test_a_view_whose_first_snapshot_request_is_lost_asks_again_and_loads(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("chat-lost-request.ipynb")
    nb.run_cell(SETUP)
    chat = chat_of(nb.run_cell("%%agent --max-turns 2\nPlease look around the project."))
    expect(chat).to_have_attribute("data-state", "awaiting_input", timeout=30_000)
    nb.page.add_init_script(drop_first_request("snapshot"))
    nb.reload()
    chat = chat_of(nb.output(1))  # ready: a later request was answered
    assert nb.page.evaluate("() => window.__dropped === true")
    expect(chat.locator('.chat-turn[data-turn="1"] .chat-tool-name')).to_have_text("list_files")


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
    chat = chat_of(out)
    expect(chips(chat)).to_have_count(3)
    expect(chat).to_have_attribute("data-state", "awaiting_input")
    answer = chat.locator('.chat-turn[data-turn="3"] .chat-msg-assistant .chat-msg-text')
    expect(answer).to_contain_text("[simulator]")
    answer_text = answer.inner_text()

    # The chat view is the cell's output: the answer is not printed again as text, and
    # the run's one-line summary still follows the view. Between them, the slot for the
    # pane of the agent's subagents stays empty (this agent spawns none) and takes no room.
    outputs = nb.cell_outputs(1)
    kinds = [o["output_type"] for o in outputs]
    assert kinds == ["display_data", "display_data", "execute_result"], outputs
    assert outputs[1]["data"] == {"text/plain": ""}, outputs[1]
    assert "3 turns" in outputs[2]["data"]["text/plain"]
    shown = out.locator(".jp-OutputArea-output")
    expect(shown).to_have_count(3)
    expect(out.locator(".boonb-tasks")).to_have_count(0)
    slot = shown.nth(1).bounding_box()
    assert slot is not None and slot["height"] == 0, slot  # no gap under the chat
    chat_bottom = chat.evaluate("el => el.getBoundingClientRect().bottom")
    summary_top = shown.nth(2).evaluate("el => el.getBoundingClientRect().top")
    assert summary_top - chat_bottom < 8, (chat_bottom, summary_top)
    out.screenshot(path=ARTIFACTS_DIR / "chat-output-without-subagents.png")
    assert answer_text not in out.inner_text().replace(chat.inner_text(), "")

    # Saved, the notebook's fallback for the view (what GitHub shows) is the finished chat.
    nb.save()
    saved = _saved_outputs(nb.file, 1)
    view, slot = [o for o in saved if o["output_type"] == "display_data"]
    assert _text(slot["data"]["text/plain"]) == ""  # the empty slot shows nothing on GitHub
    assert "application/vnd.jupyter.widget-view+json" in view["data"]
    assert "awaiting input · 3 turns" in _text(view["data"]["text/plain"])
    assert html.escape(answer_text) in _text(view["data"]["text/html"])
    assert "Line 39 of the brief." in _text(view["data"]["text/html"])

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
    # One chip looks selected: the clicked one, not also the latest turn's.
    assert _chips_that_look_selected(chat) == ["1"]
    expect(chat.locator('.chat-turn-chip[data-turn="3"]')).to_have_class(
        re.compile(r"\bis-active\b")
    )
    chat.locator('.chat-turn-chip[data-turn="2"]').click()
    assert _chips_that_look_selected(chat) == ["2"]
    first.click()
    _shot(chat, "light-past-turn")

    # Folded turns open again: one by its header, the rest with "show all turns".
    chat.locator('.chat-turn[data-turn="2"] .chat-turn-header').click()
    expect(chat).to_have_attribute("data-collapsed", "3")
    chat.locator(".chat-expand-all").click()
    expect(chat).to_have_attribute("data-collapsed", "")
    expect(chat.locator(".chat-turn.is-collapsed")).to_have_count(0)
    assert _chips_that_look_selected(chat) == ["3"]  # all shown: the latest is in view

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
        "Nothing else for now.", timeout=30_000
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
    # User messages: light text on a dark bubble, and well above WCAG AA contrast (the
    # dark theme once showed them black on blue).
    user = chat.locator(".chat-msg-user").first
    text = _contrast(user.locator(".chat-msg-text"))
    assert text["fg_luminance"] > text["bg_luminance"], text
    assert text["ratio"] >= 7, text
    assert _contrast(user.locator(".chat-msg-role"))["ratio"] >= 4.5
    assert _contrast(chat.locator(".chat-send"))["ratio"] >= 4.5
    nb.screenshot("chat-dark")
    chat.screenshot(path=ARTIFACTS_DIR / "chat-widget-dark.png")
    _shot(chat, "dark-normal-run")
    first.click()
    assert _chips_that_look_selected(chat) == ["1"]
    _shot(chat, "dark-past-turn")

    # ...and the light theme's user messages read as well.
    nb.set_theme("light")
    expect(chat).to_have_css("background-color", light_bg)
    light = _contrast(user.locator(".chat-msg-text"))
    assert light["fg_luminance"] < light["bg_luminance"] and light["ratio"] >= 7, light
    assert _contrast(chat.locator(".chat-send"))["ratio"] >= 4.5


def test_a_view_whose_kernel_restarted_says_so_and_gives_the_resume_command(
    notebook: NotebookFactory, console_errors: list[str]
) -> None:
    nb = notebook.open("chat-restart.ipynb")
    nb.run_cell(SETUP)
    chat = chat_of(nb.run_cell("%%agent --max-turns 3\nPlease look around the project."))
    expect(chat).to_have_attribute("data-state", "awaiting_input")
    expect(chat.locator(".chat-input")).to_be_enabled()
    expect(chat.locator(".chat-kernel-gone")).to_be_hidden()
    chat_id = chat.get_attribute("data-chat-id")
    assert chat_id is not None
    _shot(chat, "light-normal-run")

    nb.restart_kernel()
    command = f"%agent resume {chat_id[:8]}"
    notice = chat.locator(".chat-kernel-gone")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Kernel restarted")
    expect(notice.locator(".chat-resume-command")).to_have_text(command)
    expect(chat.locator(".chat-id")).to_have_text(chat_id[:8])  # the id the command names
    expect(chat).to_have_attribute("data-kernel", "gone")
    expect(chat).to_have_attribute("data-can-send", "false")
    expect(chat.locator(".chat-status")).to_have_text(re.compile("kernel restarted"))
    expect(chat.locator(".chat-input")).to_be_disabled()
    expect(chat.locator(".chat-send")).to_be_disabled()
    expect(chat.locator(".chat-input")).to_have_attribute("placeholder", re.compile(command))
    # What the chat showed stays readable.
    expect(chips(chat)).to_have_count(2)
    expect(chat.locator(".chat-msg-user").first).to_contain_text("Please look around")
    _shot(chat, "light-kernel-restarted")
    nb.set_theme("dark")
    _shot(chat, "dark-kernel-restarted")
    assert not [e for e in console_errors if "Cannot send" in e], console_errors


# Helpers

#: Where the screenshots of this view are kept for review (see the issue's view checklist).
SHOTS_DIR = Path("/work/notes/shots")


def _shot(chat: Locator, label: str) -> None:
    """Screenshot the chat view into the test artifacts (and the review folder, if present)."""
    chat.scroll_into_view_if_needed()
    path = ARTIFACTS_DIR / f"chat-{label}.png"
    chat.screenshot(path=path)
    if SHOTS_DIR.is_dir():
        shutil.copy(path, SHOTS_DIR / path.name)


def _saved_outputs(path: Path, index: int) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = json.loads(path.read_text())["cells"][index]["outputs"]
    return outputs


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _chips_that_look_selected(chat: Locator) -> list[str]:
    """Turn chips drawn in the accent colour (a coloured border or ring), by turn."""
    return list(
        chat.evaluate(
            """root => {
              const probe = document.createElement('span');
              probe.style.color = 'var(--chat-accent)';
              root.append(probe);
              const colour = getComputedStyle(probe).color;
              probe.remove();
              return [...root.querySelectorAll('.chat-turn-chip')]
                .filter((chip) => {
                  const s = getComputedStyle(chip);
                  return s.borderTopColor === colour || s.boxShadow.includes(colour);
                })
                .map((chip) => chip.dataset.turn);
            }"""
        )
    )


#: WCAG contrast of an element's text on the background behind it, from computed colours
#: (drawn on a canvas, so any CSS colour syntax works, and blended by the text's alpha and
#: the element's opacity).
_CONTRAST_JS = """el => {
  const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
    return [r, g, b, a / 255];
  };
  let node = el;
  let bg = [0, 0, 0, 0];
  while (node && bg[3] === 0) {
    bg = rgba(getComputedStyle(node).backgroundColor);
    node = node.parentElement;
  }
  let alpha = 1;
  for (let n = el; n && n !== node; n = n.parentElement) {
    alpha *= Number(getComputedStyle(n).opacity);
  }
  const fg = rgba(getComputedStyle(el).color);
  const a = fg[3] * alpha;
  const text = [0, 1, 2].map((i) => fg[i] * a + bg[i] * (1 - a));
  const lum = (c) => {
    const lin = c.map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  const lf = lum(text);
  const lb = lum(bg);
  return {
    ratio: (Math.max(lf, lb) + 0.05) / (Math.min(lf, lb) + 0.05),
    fg_luminance: lf,
    bg_luminance: lb,
    fg: getComputedStyle(el).color,
    bg: bg.join(','),
  };
}"""


def _contrast(element: Locator) -> dict[str, Any]:
    result: dict[str, Any] = element.evaluate(_CONTRAST_JS)
    return result


def _luminance(css: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
