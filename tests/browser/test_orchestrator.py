"""The orchestrator in a real JupyterLab: pick, fill in, validate, run, watch, cancel, re-run.

Runs are real workflow runs of the kernel (the sandbox, agents on the simulator, whose
latency slows them enough to watch); the project workflow is a real file in the
project's ``.boocode/workflows``, discovered like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, expect

from .lab_page import Notebook, NotebookFactory, drop_first_request
from .lab_server import LabServer

SHOTS_DIR = Path("/work/notes/shots")

#: One argument of each type; two phases, the same agent called twice in the first.
PROJECT_WORKFLOW = '''
workflow = {
    "name": "story-board",
    "description": "Two drafts in parallel, then one review (one argument of each type).",
    "args": {
        "topic": {"type": "string", "description": "What the story is about."},
        "drafts": {"type": "integer", "description": "How many drafts.", "default": 2},
        "temperature": {"type": "number", "description": "How wild.", "default": 0.7},
        "loud": {"type": "boolean", "description": "Shout the title.", "default": False},
        "tags": {"type": "array", "description": "Labels for the story.", "default": ["short"]},
        "style": {"type": "object", "description": "Style hints.", "default": {"tone": "dry"}},
    },
}


def run(args):
    log("drafting " + str(args["drafts"]) + " stories about " + args["topic"])
    writer = agent("writer", prompt="You write one short story line.")
    critic = agent("critic", prompt="You review story lines.")
    takes = [(writer, args["topic"] + " take " + str(i + 1)) for i in range(args["drafts"])]
    drafts = parallel(takes)
    log("drafts done")
    with_phase = phase("review", agents=[(critic, "\\n".join([d for d in drafts if d]))])
    return {"topic": args["topic"], "drafts": drafts, "review": with_phase["critic"]}
'''

SETUP = """
%load_ext boonb
from boonb.runtime import get_runtime
from boonb.sim import Rule
from boonb.widgets.orchestrator import Orchestrator
rt = get_runtime()
sim = rt.simulator()
sim.latency = 0.4
"""

LONG_MS = 60_000


@pytest.fixture
def project_workflow(lab: LabServer) -> None:
    folder = lab.root / ".boocode" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "story_board.py").write_text(PROJECT_WORKFLOW)


def open_orchestrator(notebook: NotebookFactory, name: str) -> tuple[Notebook, Locator]:
    nb = notebook.open(name)
    nb.run_cell(SETUP)
    out = nb.run_cell("%workflow")
    view = out.locator(".boonb-orchestrator")
    expect(view).to_have_attribute("data-ready", "true")
    return nb, view


def choose(view: Locator, name: str) -> Locator:
    view.locator(f'.or-workflow[data-name="{name}"]').click()
    form = view.locator(f'.or-form-box[data-workflow="{name}"]')
    expect(form).to_be_visible()
    return form


def field(form: Locator, arg: str) -> Locator:
    return form.locator(f'.or-field[data-arg="{arg}"]')


def agent_row(view: Locator, label: str) -> Locator:
    return view.locator(f'.or-run .or-agent[data-agent="{label}"]')


def start(view: Locator, topic: str) -> Locator:
    form = choose(view, "story-board")
    field(form, "topic").locator("input").fill(topic)
    form.locator("button.or-run-button").click()
    pane = view.locator(".or-run")
    expect(pane.locator(".or-run-title")).to_have_text("story-board")
    return pane


@pytest.mark.usefixtures("project_workflow")
def test_selector_and_form_refuse_bad_arguments_inline_and_nothing_runs(
    notebook: NotebookFactory,
) -> None:
    nb, view = open_orchestrator(notebook, "orchestrator-form.ipynb")
    runs_before = nb.kernel_value("len(rt.workflows.runs().runs)")
    options = view.locator(".or-workflow")
    for name in ("deep-research", "multi-review", "plan-verify", "bounty-hunt", "story-board"):
        expect(view.locator(f'.or-workflow[data-name="{name}"]')).to_be_visible()
    source = '.or-workflow[data-name="{}"] .or-source'
    expect(view.locator(source.format("story-board"))).to_have_text("project")
    expect(view.locator(source.format("bounty-hunt"))).to_have_text("built-in")

    # Search by description and by source.
    view.locator(".or-search").fill("vulnerability")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("data-name", "bounty-hunt")
    view.locator(".or-search").fill("project")
    expect(options).to_have_count(1)
    view.locator(".or-search").fill("")

    # Every argument type gets its control, with its description, default and required mark.
    form = choose(view, "story-board")
    expect(field(form, "topic").locator(".or-required")).to_have_count(1)
    expect(field(form, "drafts").locator(".or-required")).to_have_count(0)
    description = field(form, "topic").locator(".or-field-description")
    expect(description).to_have_text("What the story is about.")
    expect(field(form, "drafts").locator("input")).to_have_value("2")
    expect(field(form, "temperature").locator("input")).to_have_value("0.7")
    expect(field(form, "loud").locator('input[type="checkbox"]')).not_to_be_checked()
    expect(field(form, "tags").locator("textarea")).to_have_value('["short"]')
    expect(field(form, "style").locator("textarea")).to_have_value('{"tone":"dry"}')

    # A missing required argument and a wrong type: said inline, by the manager's check.
    field(form, "drafts").locator("input").fill("many")
    expect(field(form, "topic").locator(".or-field-error")).to_contain_text("required")
    expect(field(form, "drafts").locator(".or-field-error")).to_contain_text("integer")
    expect(form).to_have_attribute("data-valid", "false")
    form.locator("button.or-run-button").click()
    expect(form.locator(".or-verdict")).to_have_text(re.compile(r"^2 problems"))
    assert nb.kernel_value("len(rt.workflows.runs().runs)") == runs_before
    expect(view.locator(".or-run")).to_be_hidden()
    view.screenshot(path=SHOTS_DIR / "orchestrator-form-invalid.png")

    # The JSON editor is the same values; what is typed there comes back to the form.
    form.locator('button[data-action="mode-json"]').click()
    editor = form.locator(".or-json-editor")
    expect(editor).to_have_value(re.compile(r'"drafts": "many"'))
    editor.fill('{"topic": "owls", "drafts": 3, "loud": true, "tags": ["a", "b"]}')
    expect(form).to_have_attribute("data-valid", "true")
    editor.fill('{"topic": ')
    expect(form.locator(".or-json-error")).to_contain_text("not valid JSON")
    editor.fill('{"topic": "owls", "drafts": 3, "loud": true, "tags": "x"}')
    expect(field(form, "tags").locator(".or-field-error")).to_contain_text("list")
    editor.fill('{"topic": "owls", "drafts": 3, "loud": true}')
    form.locator('button[data-action="mode-form"]').click()
    expect(field(form, "topic").locator("input")).to_have_value("owls")
    expect(field(form, "drafts").locator("input")).to_have_value("3")
    expect(field(form, "loud").locator("input")).to_be_checked()
    expect(form).to_have_attribute("data-valid", "true")
    expect(field(form, "topic").locator(".or-field-error")).to_be_hidden()


@pytest.mark.usefixtures("project_workflow")
def test_a_run_shows_agents_and_live_logs_cancel_stops_it_and_rerun_skips_cached_agents(
    notebook: NotebookFactory,
) -> None:
    nb, view = open_orchestrator(notebook, "orchestrator-run.ipynb")

    # A slow run: agents running, the log live, then Cancel.
    nb.run_cell("sim.add_rule(Rule('glacial', latency=30, reply='x'))")
    pane = start(view, "glacial")
    expect(pane).to_have_attribute("data-state", "running")
    expect(agent_row(view, "writer #1")).to_have_attribute("data-state", "running")
    expect(agent_row(view, "writer #2")).to_have_attribute("data-state", "running")
    expect(pane.locator(".or-log-line").first).to_contain_text("drafting 2 stories about glacial")
    pane.screenshot(path=SHOTS_DIR / "orchestrator-running.png")
    pane.locator("button.or-cancel").click()
    expect(pane).to_have_attribute("data-state", "cancelled", timeout=5_000)
    expect(pane.locator("button.or-cancel")).to_be_hidden()
    expect(agent_row(view, "writer #1")).not_to_have_attribute("data-state", "running")

    # A run to the end: per-agent progress, the log lines, the result.
    pane = start(view, "ducks")
    expect(pane.locator(".or-run-agents")).to_have_text(re.compile(r"^\d/\d agents done$"))
    expect(pane).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    for label in ("writer #1", "writer #2", "critic"):
        row = agent_row(view, label)
        expect(row).to_have_attribute("data-state", "completed")
        expect(row.locator(".or-agent-tokens")).to_have_text(re.compile(r"tokens$"))
        expect(row.locator(".or-agent-duration")).to_have_text(re.compile(r"\d"))
    expect(pane.locator('.or-phase[data-phase="review"] .or-agent')).to_have_count(1)
    expect(pane.locator(".or-run-agents")).to_have_text("3/3 agents done")
    expect(pane.locator(".or-run-tokens")).to_have_text(re.compile(r"tokens$"))
    expect(pane.locator(".or-log")).to_contain_text("drafts done")
    expect(pane.locator(".or-result")).to_contain_text('"topic": "ducks"')
    expect(pane.locator(".or-run-cached")).to_be_hidden()
    pane.locator(".or-filter-agent").select_option("critic")
    expect(pane.locator(".or-log-line")).not_to_have_count(0)
    for line in pane.locator(".or-log-line").all_inner_texts():
        assert "critic" in line
    pane.locator(".or-filter-agent").select_option("")
    view.screenshot(path=SHOTS_DIR / "orchestrator-light.png")
    pane.screenshot(path=SHOTS_DIR / "orchestrator-pane-light.png")

    # An agent's traces open in a trace viewer inside the pane.
    agent_row(view, "critic").locator("button.or-traces").click()
    expect(pane.locator(".or-traces-panel .boonb-traceviewer")).to_be_visible()
    nb.page.keyboard.press("Escape")
    expect(pane.locator(".or-traces-panel")).to_be_hidden()

    # Re-run with the same arguments: every agent comes from the cache.
    first = pane.get_attribute("data-run-id")
    pane.locator("button.or-rerun").click()
    expect(pane).not_to_have_attribute("data-run-id", first or "")
    expect(pane).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    expect(pane.locator(".or-run-cached")).to_have_text("3/3 steps cached — skipped")
    for label in ("writer #1", "writer #2", "critic"):
        row = agent_row(view, label)
        expect(row).to_have_attribute("data-state", "cached")
        expect(row.locator(".or-agent-state")).to_have_text("skipped (cached)")
    expect(view.locator(".or-run-entry")).to_have_count(3, timeout=5_000)

    nb.set_theme("dark")
    expect(view).to_have_attribute("data-theme", "dark")
    view.screenshot(path=SHOTS_DIR / "orchestrator-dark.png")
    pane.screenshot(path=SHOTS_DIR / "orchestrator-pane-dark.png")


@pytest.mark.usefixtures("project_workflow")
def test_a_finished_run_opens_from_the_runs_list_in_a_new_kernel_with_its_steps_logs_result(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("orchestrator-first.ipynb")
    nb.run_cell(SETUP)
    out = nb.run_cell(
        "%workflow run story-board --args '{\"topic\": \"herons\", \"drafts\": 2}'"
    )
    live = out.locator(".boonb-orchestrator[data-mode='run'] .or-run")
    expect(live).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    run_id = live.get_attribute("data-run-id")
    assert run_id is not None
    steps = live.locator(".or-agent").evaluate_all("rows => rows.map(r => r.dataset.agent)")
    log_count = live.locator(".or-log-count").inner_text()
    live.screenshot(path=SHOTS_DIR / "orchestrator-run-pane.png")
    nb.page.keyboard.press("Control+s")

    other = notebook.open("orchestrator-second.ipynb")
    other.run_cell(SETUP)
    view = other.run_cell("%workflow").locator(".boonb-orchestrator")
    expect(view).to_have_attribute("data-ready", "true")
    view.locator(f'.or-run-entry[data-run-id="{run_id}"]').click()
    pane = view.locator(".or-run")
    expect(pane).to_have_attribute("data-run-id", run_id)
    expect(pane).to_have_attribute("data-state", "completed")
    expect(pane).to_have_attribute("data-live", "false")
    expect(pane.locator(".or-agent")).to_have_count(len(steps))
    assert pane.locator(".or-agent").evaluate_all("rows => rows.map(r => r.dataset.agent)") == steps
    expect(pane.locator(".or-log-count")).to_have_text(log_count)
    expect(pane.locator(".or-log")).to_contain_text("drafting 2 stories about herons")
    expect(pane.locator(".or-result")).to_contain_text('"topic": "herons"')
    expect(pane.locator("button.or-cancel")).to_be_hidden()
    expect(pane.locator("button.or-rerun")).to_be_visible()


@pytest.mark.usefixtures("project_workflow")
def test_a_run_pane_whose_first_request_is_lost_asks_again_and_shows_the_run(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("orchestrator-lost-request.ipynb")
    nb.run_cell(SETUP)
    out = nb.run_cell(
        "%workflow run story-board --args '{\"topic\": \"herons\", \"drafts\": 2}'"
    )
    live = out.locator(".boonb-orchestrator[data-mode='run'] .or-run")
    expect(live).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    steps = live.locator(".or-agent").count()
    nb.page.add_init_script(drop_first_request("open"))
    nb.reload()
    pane = nb.output(1).locator(".boonb-orchestrator[data-mode='run'] .or-run")
    expect(pane).to_have_attribute("data-state", "completed", timeout=15_000)
    assert nb.page.evaluate("() => window.__dropped === true")
    expect(pane.locator(".or-agent")).to_have_count(steps)


def test_a_run_that_logs_thousands_of_lines_at_once_ends_with_every_line_in_its_pane(
    notebook: NotebookFactory, console_errors: list[str]
) -> None:
    nb = notebook.open("orchestrator-flood.ipynb")
    nb.run_cell(SETUP)
    script = 'for i in range(10000):\n    log("line " + str(i))\nresult = 10000\n'
    out = nb.run_cell(f"rid = rt.workflows.run_script({script!r})\nOrchestrator(rid)")
    pane = out.locator(".or-run")
    expect(pane).to_have_attribute("data-state", "completed", timeout=LONG_MS)
    expect(pane.locator(".or-log")).to_have_attribute("data-lines", "10000")
    expect(pane.locator(".or-log-count")).to_have_text("10000 lines")
    assert console_errors == []


def test_a_blocking_workflow_cells_pane_says_to_interrupt_and_a_no_wait_runs_pane_cancels(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("orchestrator-cancel.ipynb")
    nb.run_cell(SETUP + "sim.add_rule(Rule('glacial', latency=30, reply='x'))")
    slow = 'result = agent("a", prompt="p").run("glacial")'

    # The cell waits for its run: the kernel would answer a Cancel only once the run ended.
    out = nb.run_cell(f"%%workflow\n{slow}", wait=False)
    pane = out.locator(".or-run")
    expect(pane).to_have_attribute("data-state", "running", timeout=LONG_MS)
    hint = pane.locator(".or-cancel-hint")
    expect(hint).to_be_visible()
    expect(hint).to_have_text("interrupt the kernel (■) to cancel this run")
    expect(pane.locator("button.or-cancel")).to_be_hidden()
    pane.screenshot(path=SHOTS_DIR / "orchestrator-cancel-hint-light.png")
    nb.set_theme("dark")
    expect(out.locator(".boonb-orchestrator")).to_have_attribute("data-theme", "dark")
    pane.screenshot(path=SHOTS_DIR / "orchestrator-cancel-hint-dark.png")
    nb.set_theme("light")
    nb.interrupt()
    nb.wait_idle()
    expect(pane).to_have_attribute("data-state", "cancelled")
    expect(hint).to_be_hidden()

    # --no-wait: the cell returned at once, so the pane's Cancel is answered.
    nb.run_cell(f"%%workflow --no-wait\n{slow}")
    pane = nb.run_cell("Orchestrator(_)").locator(".or-run")
    expect(pane).to_have_attribute("data-state", "running", timeout=LONG_MS)
    expect(pane.locator(".or-cancel-hint")).to_be_hidden()
    pane.locator("button.or-cancel").click()
    expect(pane).to_have_attribute("data-state", "cancelled", timeout=5_000)


def test_a_long_result_is_folded_until_show_all_and_a_json_text_result_is_shown_as_json(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("orchestrator-fold.ipynb")
    nb.run_cell(SETUP)
    out = nb.run_cell('%%workflow\nresult = "\\n".join("line " + str(i) for i in range(100))')
    result = out.locator(".or-result")
    expect(result.locator(".or-result-text")).to_contain_text("line 23")
    expect(result.locator(".or-result-text")).not_to_contain_text("line 24")
    result.locator("button.or-unfold").click()
    expect(result.locator(".or-result-text")).to_contain_text("line 99")
    expect(result.locator("button.or-unfold")).to_have_count(0)

    out = nb.run_cell('%%workflow\nresult = \'{"answer": 42}\'')
    json_block = out.locator(".or-result .or-result-json")
    expect(json_block).to_contain_text('"answer": 42')
    expect(json_block.locator(".json-number")).to_have_text("42")
