"""The tasks pane in a real JupyterLab: live states, elapsed time, results, retry, cancel, theme.

Tasks are real background subagents of the kernel, spawned with ``boonb.spawn`` and run on
the simulator (its latency slows them enough to watch); a failed one meets injected
server errors.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from playwright.sync_api import Locator, expect

from .lab_page import Notebook, NotebookFactory, drop_first_request

SHOTS_DIR = Path("/work/notes/shots")

SETUP = """
%load_ext boonb
import boonb
from boonb.runtime import get_runtime
from boonb.sim import Fault
from boonb.widgets.tasks import TasksPane

rt = get_runtime()
sim = rt.simulator()
sim.latency = 1.0
"""

#: A running task of another live kernel of the project, as its row reads (a re-render lists it).
OTHER_KERNELS_TASK = """
import os, socket, uuid
from datetime import UTC, datetime
from boonb.store.tasks import owner_row
theirs = uuid.uuid4()
now = datetime.now(UTC)
rt.store.writer.enqueue(owner_row({
    "id": theirs, "type": "background_subagent", "state": "running", "title": "theirs",
    "owner": "another-kernel", "owner_pid": os.getpid(), "owner_host": socket.gethostname(),
    "attempt": 1, "payload": {"prompt": "theirs"}, "created_at": now, "started_at": now,
    "updated_at": now,
}))
rt.store.writer.flush()
pane.poll_once()
"""

#: Long enough for every state change of a task on the simulator, retries included.
LONG_MS = 60_000


def open_pane(notebook: NotebookFactory, name: str) -> tuple[Notebook, Locator]:
    nb = notebook.open(name)
    nb.run_cell(SETUP)
    out = nb.run_cell("pane = TasksPane()\npane")
    pane = out.locator(".boonb-tasks")
    expect(pane).to_have_attribute("data-ready", "true")
    return nb, pane


def entry(pane: Locator, title: str) -> Locator:
    return pane.locator(f'.tk-entry:has(.tk-title:text-is("{title}"))')


def badge(pane: Locator) -> Locator:
    return pane.locator(".tk-running")


def test_pane_follows_tasks_from_pending_to_completed_and_shows_their_results(
    notebook: NotebookFactory,
) -> None:
    nb, pane = open_pane(notebook, "tasks-live.ipynb")
    expect(badge(pane)).to_have_attribute("data-count", "0")
    ours = pane.locator(".tk-entry").filter(has_text=re.compile(r"live task \d"))

    # Three tasks, two at a time (BACKGROUND_MAX_CONCURRENT=2): the third waits, pending.
    nb.run_cell(
        "hs = [boonb.spawn(f'Say hello {i}', metadata={'name': f'live task {i}'})\n"
        "      for i in range(3)]"
    )
    expect(ours).to_have_count(3)
    expect(entry(pane, "live task 2")).to_have_attribute("data-state", "pending")
    expect(entry(pane, "live task 2").locator(".tk-duration")).to_have_text("waiting")
    expect(badge(pane)).to_have_attribute("data-count", "2")
    expect(badge(pane)).to_have_text("2 running")

    # Running: the elapsed time moves, the last tool call shows, the bar counts turns.
    first = entry(pane, "live task 0")
    expect(first).to_have_attribute("data-state", "running")
    duration = first.locator(".tk-duration")
    expect(duration).to_have_text(re.compile(r"elapsed$"))
    before = duration.inner_text()
    expect(duration).not_to_have_text(before)  # ticks while running, with no new frame
    expect(first.locator(".tk-tool")).to_have_text(re.compile(r"^▸ \w+$"))
    expect(first.locator(".tk-turns")).to_have_text(re.compile(r"^\d+/10 turns$"))
    expect(first.locator("button.tk-cancel")).to_be_visible()
    expect(first.locator("button.tk-result")).to_be_hidden()
    pane.screenshot(path=SHOTS_DIR / "tasks-running.png")

    # All three complete; the badge is back to zero, durations are totals.
    done = ours.and_(pane.locator('.tk-entry[data-state="completed"]'))
    expect(done).to_have_count(3, timeout=LONG_MS)
    expect(badge(pane)).to_have_attribute("data-count", "0")
    expect(first.locator(".tk-duration")).to_have_text(re.compile(r"^[\d.]+ s$"))
    expect(first.locator(".tk-usage")).to_have_text(re.compile(r"tokens · \$"))
    expect(first.locator("button.tk-cancel")).to_be_hidden()

    # View result: the answer and the summary, from the keyboard (focus, then Enter).
    first.locator("button.tk-result").focus()
    nb.page.keyboard.press("Enter")
    panel = pane.locator('.tk-panel[data-kind="result"]')
    expect(panel).to_have_attribute("data-status", "loaded")
    expect(panel.locator(".tk-answer")).to_contain_text("[simulator]")
    expect(panel.locator(".tk-summary")).to_have_text(re.compile(r"^\d+ turns · \d+ tool calls"))
    expect(panel.locator(".tk-panel-title")).to_have_text("Result — live task 0")
    # Collecting the result marks it read, which still shows as completed.
    nb.wait_for_kernel_value("rt.tasks.get(hs[0].task_id).state", "'read'")
    expect(first).to_have_attribute("data-state", "completed")
    pane.screenshot(path=SHOTS_DIR / "tasks-light.png")
    nb.page.keyboard.press("Escape")
    expect(panel).to_have_count(0)

    # Every entry opens its subagent's traces: the trace viewer, inside the pane.
    entry(pane, "live task 1").locator("button.tk-traces").click()
    traces = pane.locator('.tk-panel[data-kind="traces"] .boonb-traceviewer')
    expect(traces).to_have_attribute("data-ready", "true")
    expect(traces.locator(".tv-trace").first).to_be_visible()

    # Dark theme: the same pane reads well (badges, bars, buttons on Lab's dark colours).
    nb.set_theme("dark")
    expect(pane).to_have_attribute("data-theme", "dark")
    pane.screenshot(path=SHOTS_DIR / "tasks-dark-traces.png")
    pane.locator("button.tk-close").click()
    first.locator("button.tk-result").click()
    expect(pane.locator('.tk-panel[data-kind="result"]')).to_have_attribute("data-status", "loaded")
    colours = [
        entry(pane, "live task 0").locator(".tk-badge").evaluate("e => getComputedStyle(e).color"),
        pane.evaluate("e => getComputedStyle(e).backgroundColor"),
    ]
    assert colours[1] != "rgb(255, 255, 255)", colours  # the pane follows the dark theme
    pane.screenshot(path=SHOTS_DIR / "tasks-dark.png")

    # A refreshed page asks the kernel again and shows the same tasks.
    nb.set_theme("light")
    nb.reload()
    pane = nb.output(1).locator(".boonb-tasks")
    expect(pane).to_have_attribute("data-ready", "true")
    done = pane.locator('.tk-entry[data-state="completed"]')
    expect(done.filter(has_text=re.compile(r"live task \d"))).to_have_count(3)


def test_a_pane_whose_first_list_request_is_lost_asks_again_and_loads(
    notebook: NotebookFactory,
) -> None:
    nb, pane = open_pane(notebook, "tasks-lost-request.ipynb")
    nb.run_cell("h = boonb.spawn('Say hello', metadata={'name': 'the one task'})")
    done = entry(pane, "the one task")
    expect(done).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    nb.page.add_init_script(drop_first_request("list"))
    nb.reload()
    pane = nb.output(1).locator(".boonb-tasks")
    expect(pane).to_have_attribute("data-ready", "true", timeout=15_000)
    assert nb.page.evaluate("() => window.__dropped === true")
    expect(entry(pane, "the one task")).to_have_attribute("data-state", "completed")


def test_a_failed_task_is_retried_and_a_running_one_cancelled_from_the_pane(
    notebook: NotebookFactory,
) -> None:
    nb, pane = open_pane(notebook, "tasks-actions.ipynb")

    # Failed: the model server answers 500 until the client's retries run out.
    nb.run_cell(
        "sim.latency = 0\n"
        "sim.inject(Fault.server_error(500), times=5)\n"
        "flaky = boonb.spawn('Say hello', metadata={'name': 'flaky'})"
    )
    failed = entry(pane, "flaky")
    expect(failed).to_have_attribute("data-state", "failed", timeout=LONG_MS)
    expect(failed.locator(".tk-error")).to_contain_text("500")
    expect(failed.locator("button.tk-retry")).to_be_visible()
    expect(failed.locator("button.tk-result")).to_be_hidden()
    nb.run_cell("sim.clear_faults()")
    pane.screenshot(path=SHOTS_DIR / "tasks-failed.png")

    failed.locator("button.tk-retry").click()
    attempts = pane.locator('.tk-entry:has(.tk-title:text-is("flaky"))')
    expect(attempts).to_have_count(2)
    expect(attempts.and_(pane.locator('.tk-entry[data-state="completed"]'))).to_have_count(
        1, timeout=LONG_MS
    )
    nb.wait_for_kernel_value(
        "[t.attempt for t in rt.tasks.list() if t.title == 'flaky' and t.state == 'completed']",
        "[2]",
    )

    # Cancel: a slow task stops, its entry says cancelled and offers Retry.
    nb.run_cell("sim.latency = 5\nslow = boonb.spawn('Say hello', metadata={'name': 'slow'})")
    slow = entry(pane, "slow")
    expect(slow).to_have_attribute("data-state", "running")
    expect(badge(pane)).to_have_attribute("data-count", "1")
    slow.locator("button.tk-cancel").click()
    expect(slow).to_have_attribute("data-state", "cancelled")
    expect(badge(pane)).to_have_attribute("data-count", "0")
    expect(slow.locator("button.tk-cancel")).to_be_hidden()
    expect(slow.locator("button.tk-retry")).to_be_visible()
    nb.wait_for_kernel_value("rt.tasks.get(slow.task_id).state", "'cancelled'")

    # Another kernel's task: the cancel is asked of its owner, and the entry says so meanwhile.
    nb.run_cell(OTHER_KERNELS_TASK)
    theirs = entry(pane, "theirs")
    expect(theirs).to_have_attribute("data-state", "running")
    theirs.locator("button.tk-cancel").click()
    expect(theirs.locator("button.tk-cancel")).to_have_text("cancelling…")
    expect(theirs.locator("button.tk-cancel")).to_be_disabled()
    nb.wait_for_kernel_value("rt.tasks.get(theirs).cancel_requested", "True")


#: An agent that fans out to two subagents, then answers; the simulator scripts both sides.
#: The pane answers a cancel only once its task has ended, so the task's "cancelled" frame
#: reaches the view before the reply, which carries the task as it was when cancelled (on
#: a loaded machine the engine thread can win that race by itself: a CI run).
LATE_CANCEL_REPLY = """
_answer = pane.answer
def late_answer(content):
    reply = _answer(content)
    if content.get("kind") == "cancel":
        rt.tasks.wait(content["task_id"], 30)
    return reply
pane.answer = late_answer
"""


def test_a_cancels_reply_that_comes_after_the_cancelled_frame_does_not_undo_it(
    notebook: NotebookFactory,
) -> None:
    nb, pane = open_pane(notebook, "tasks-late-reply.ipynb")
    nb.run_cell(LATE_CANCEL_REPLY)
    nb.run_cell("sim.latency = 30\nslow = boonb.spawn('Say hello', metadata={'name': 'late'})")
    slow = entry(pane, "late")
    expect(slow).to_have_attribute("data-state", "running")
    slow.locator("button.tk-cancel").click()
    retry = slow.locator("button.tk-retry")
    expect(retry).to_be_visible()  # the cancelled frame came, and the cancel is still busy
    expect(retry).to_be_enabled()  # the reply came too
    expect(slow).to_have_attribute("data-state", "cancelled")
    expect(badge(pane)).to_have_attribute("data-count", "0")


FAN_OUT = """
from boonb.sim import Rule
sim.latency = 0
sim.clear_rules()
sim.add_rule(Rule('^Fan out', tool_calls=[
    {'name': 'spawn_subagent', 'arguments': {'prompt': 'sub alpha: list the files',
                                            'metadata': {'name': 'alpha'}}},
    {'name': 'spawn_subagent', 'arguments': {'prompt': 'sub beta: count the lines',
                                            'metadata': {'name': 'beta'}}}]))
sim.add_rule(Rule('"status": "pending"', role='tool', reply='Both subagents are on it.'))
sim.add_rule(Rule('^sub alpha', reply='alpha: 3 files'))
sim.add_rule(Rule('^sub beta', reply='beta: 120 lines', latency=4.0))
"""


def test_an_agent_that_spawns_shows_the_pane_of_its_own_subagents_under_its_chat(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("tasks-under-agent.ipynb")
    nb.run_cell(SETUP + FAN_OUT)
    # A task spawned from the notebook: in the project, but not the agent's.
    nb.run_cell("unrelated = boonb.spawn('Say hello', metadata={'name': 'not the agent'})")
    nb.wait_for_kernel_value("rt.tasks.wait(unrelated.task_id, 30).state", "'completed'")

    out = nb.run_cell("%%agent --max-turns 3\nFan out the research", wait=False)
    pane = out.locator(".boonb-tasks")
    # It appears with the first spawn, while the cell still runs, and follows live.
    expect(pane.locator(".tk-entry")).to_have_count(2, timeout=30_000)
    expect(entry(pane, "beta")).to_have_attribute("data-state", "running")
    expect(badge(pane)).to_have_attribute("data-count", "1")
    out.screenshot(path=SHOTS_DIR / "tasks-under-agent-running.png")
    nb.wait_idle()
    expect(pane).to_have_attribute("data-ready", "true")
    chat_id = out.locator(".boonb-chat").get_attribute("data-chat-id")
    assert chat_id and pane.get_attribute("data-chat-id") == chat_id  # that agent's pane
    expect(pane.locator(".tk-heading")).to_have_text("Subagents")
    titles = pane.locator(".tk-entry .tk-title")
    expect(titles).to_have_text(["beta", "alpha"])  # newest first; not the notebook's task
    expect(pane).to_have_attribute("data-tasks", "2")
    done = pane.locator('.tk-entry[data-state="completed"]')
    expect(done).to_have_count(2, timeout=LONG_MS)
    expect(badge(pane)).to_have_attribute("data-count", "0")

    # Chat, then its subagents, then the run's summary: the pane sits under the chat.
    outputs = nb.cell_outputs(2)
    kinds = [o["output_type"] for o in outputs]
    assert kinds == ["display_data", "display_data", "execute_result"], kinds
    assert "application/vnd.jupyter.widget-view+json" in outputs[1]["data"]
    chat_box = out.locator(".boonb-chat").bounding_box()
    pane_box = pane.bounding_box()
    assert chat_box and pane_box and pane_box["y"] >= chat_box["y"] + chat_box["height"] - 1

    entry(pane, "alpha").locator("button.tk-result").click()
    panel = pane.locator('.tk-panel[data-kind="result"]')
    expect(panel.locator(".tk-answer")).to_contain_text("alpha: 3 files")
    out.scroll_into_view_if_needed()
    out.screenshot(path=SHOTS_DIR / "tasks-under-agent-light.png")
    nb.set_theme("dark")
    expect(pane).to_have_attribute("data-theme", "dark")
    out.screenshot(path=SHOTS_DIR / "tasks-under-agent-dark.png")
    nb.set_theme("light")

    # A refreshed page shows the same pane under the chat, asked of the kernel again.
    nb.reload()
    pane = nb.output(2).locator(".boonb-tasks")
    expect(pane).to_have_attribute("data-ready", "true")
    expect(pane.locator(".tk-entry .tk-title")).to_have_text(["beta", "alpha"])


#: ``n`` task rows of another live kernel of the project: every third running, "task 0"
#: oldest, and all newer than the tasks of other tests in the same project.
MANY_TASKS = """
import os, socket, uuid
from datetime import UTC, datetime, timedelta
from boonb.store.tasks import owner_row
t0 = datetime.now(UTC)
for i in range({n}):
    state = "running" if i % 3 == 0 else "completed"
    at = t0 + timedelta(seconds=i)
    rt.store.writer.enqueue(owner_row({{
        "id": uuid.uuid4(), "type": "background_subagent", "state": state,
        "title": f"task {{i}}", "owner": "another-kernel", "owner_pid": os.getpid(),
        "owner_host": socket.gethostname(), "attempt": 1, "payload": {{"prompt": "p"}},
        "created_at": at, "started_at": at,
        "finished_at": None if state == "running" else at + timedelta(seconds=3),
        "updated_at": at,
    }}))
rt.store.writer.flush()
"""


def test_many_tasks_come_a_page_at_a_time_as_the_user_scrolls_and_the_badge_counts_all(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("tasks-many.ipynb")
    nb.run_cell(SETUP + MANY_TASKS.format(n=300))
    # Earlier tests of the session leave their (finished) tasks in the same project.
    total = int(nb.kernel_value("len(rt.tasks.list(limit=100_000))"))
    running = nb.kernel_value("sum(t.state == 'running' for t in rt.tasks.list(limit=100_000))")
    assert total >= 300 and int(running) >= 100
    out = nb.run_cell("pane = TasksPane()\npane")
    pane = out.locator(".boonb-tasks")
    expect(pane).to_have_attribute("data-ready", "true")
    # The first reply holds one page; the header counts every task, the badge every running one.
    expect(pane).to_have_attribute("data-loaded", "30")
    expect(pane).to_have_attribute("data-tasks", str(total))
    expect(pane.locator(".tk-count")).to_have_text(f"{total} tasks")
    expect(badge(pane)).to_have_attribute("data-count", running)
    expect(pane.locator(".tk-entry").first.locator(".tk-title")).to_have_text("task 299")

    # Scrolled to the end: the pages between come, and the oldest task is there, in order.
    scroller = pane.locator(".tk-scroller")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(pane).to_have_attribute("data-loaded", str(total))
    expect(pane.locator(".tk-entry").last).to_be_visible()
    expect(pane.locator(".tk-loading")).to_have_count(0)
    rows = pane.locator(".tk-entry")
    tops = rows.evaluate_all(
        "els => els.map((e) => [e.querySelector('.tk-title').textContent, parseFloat(e.style.top)])"
    )
    ordered = [title for title, _ in sorted(tops, key=lambda t: t[1])]
    # The rows drawn at the end are the project's last tasks, newest first, with no gaps.
    # (How many of the 300 they include depends on the tasks earlier tests left.)
    titles = ast.literal_eval(nb.kernel_value("[t.title for t in rt.tasks.list(limit=100_000)]"))
    assert len(ordered) > 10 and ordered == titles[-len(ordered) :], (ordered, titles[-40:])
