"""The orchestrator's kernel side: workflows, argument checks, runs, live frames, re-runs.

Driven through a dummy comm (anywidget's custom messages, captured), against a real
runtime: a real project database, workflows discovered from real files, runs in the
sandbox with their agents on the simulator.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boonb import config
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.widgets.orchestrator import Orchestrator
from tests.kernels import Kernel

pytestmark = pytest.mark.slow

#: A project workflow declaring one argument of each type, two agents in a phase.
ALL_TYPES = '''
workflow = {
    "name": "all-types",
    "description": "One argument of each type.",
    "args": {
        "topic": {"type": "string", "description": "What to write about."},
        "count": {"type": "integer", "description": "How many.", "default": 2},
        "ratio": {"type": "number", "default": 0.5},
        "loud": {"type": "boolean", "default": False},
        "tags": {"type": "array", "default": ["a"]},
        "extra": {"type": "object", "default": {}},
    },
}


def run(args):
    log("writing about " + args["topic"])
    writer = agent("writer", prompt="You write one line.")
    pair = [(writer, args["topic"] + " one"), (writer, args["topic"] + " two")]
    done = phase("write", agents=pair)
    return {"topic": args["topic"], "lines": done}
'''


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    folder = config.get_settings().project / ".boocode" / "workflows"
    folder.mkdir(parents=True)
    (folder / "all_types.py").write_text(ALL_TYPES)
    rt = Runtime()
    rt.simulator().latency = 0
    yield rt
    rt.shutdown()


class Pane:
    """An Orchestrator whose outgoing custom messages are captured."""

    def __init__(self, widget: Orchestrator) -> None:
        self.widget = widget
        self.sent: queue.Queue[dict[str, Any]] = queue.Queue()
        original = widget.send

        def capture(content: dict[str, Any], buffers: object = None) -> None:
            self.sent.put(content)
            original(content, buffers)

        widget.send = capture
        self.frames: list[dict[str, Any]] = []

    def ask(self, **content: Any) -> dict[str, Any]:
        """Deliver a request as the comm does; return its reply (frames are kept aside)."""
        content.setdefault("request_id", f"test:{uuid.uuid4().hex[:6]}")
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )
        while True:
            message = self.sent.get(timeout=10)
            if message["kind"] == "frames":
                self.frames.extend(message["frames"])
                continue
            assert message["request_id"] == content["request_id"], message
            return message

    def frames_until_ended(self, run_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The run's frames pushed until its status says it ended."""
        while True:
            ended = [
                f
                for f in self.frames
                if f["run_id"] == run_id
                and f["type"] == "workflow:status"
                and f["state"] not in ("pending", "running")
            ]
            if ended:
                return [f for f in self.frames if f["run_id"] == run_id]
            message = self.sent.get(timeout=timeout)
            if message["kind"] == "frames":
                self.frames.extend(message["frames"])


@pytest.fixture
def pane(runtime: Runtime) -> Iterator[Pane]:
    widget = Orchestrator(runtime=runtime)
    yield Pane(widget)
    widget.close()


def test_workflows_lists_the_builtins_and_a_project_workflow_with_each_arg_type(
    pane: Pane,
) -> None:
    reply = pane.ask(kind="workflows")
    assert reply["kind"] == "workflows"
    by_name = {w["name"]: w for w in reply["workflows"]}
    for builtin in ("deep-research", "multi-review", "plan-verify", "bounty-hunt"):
        assert by_name[builtin]["source"] == "builtin"
    ours = by_name["all-types"]
    assert ours["source"] == "project"
    types = {a["name"]: (a["type"], a["required"], a["default"]) for a in ours["args"]}
    assert types == {
        "topic": ("string", True, None),
        "count": ("integer", False, 2),
        "ratio": ("number", False, 0.5),
        "loud": ("boolean", False, False),
        "tags": ("array", False, ["a"]),
        "extra": ("object", False, {}),
    }


def test_a_missing_required_argument_and_a_wrong_type_are_refused_and_nothing_runs(
    pane: Pane, runtime: Runtime
) -> None:
    check = pane.ask(kind="validate", workflow="all-types", args={"count": "many"})["check"]
    assert check["ok"] is False
    by_arg = {e["arg"]: e["message"] for e in check["errors"]}
    assert set(by_arg) == {"topic", "count"}
    assert "required" in by_arg["topic"]
    assert "integer" in by_arg["count"]

    started = pane.ask(kind="run", workflow="all-types", args={"count": "many"})
    assert started["kind"] == "started" and started["run_id"] is None
    assert {e["arg"] for e in started["errors"]} == {"topic", "count"}
    assert pane.ask(kind="runs")["runs"] == []  # nothing ran

    fine = pane.ask(kind="validate", workflow="all-types", args={"topic": "ducks"})["check"]
    assert fine["ok"] is True and fine["errors"] == []


def test_a_run_pushes_its_agents_progress_and_log_lines_and_opens_with_the_same_steps(
    pane: Pane,
) -> None:
    started = pane.ask(kind="run", workflow="all-types", args={"topic": "ducks"})
    run_id = started["run_id"]
    assert run_id is not None and started["errors"] == []
    frames = pane.frames_until_ended(run_id)
    steps = [f for f in frames if f["type"] == "workflow:step"]
    # The same agent called twice reads as two labelled steps, each started then completed.
    labels = {f["label"] for f in steps}
    assert len(labels) == 2 and all(label.startswith("writer") for label in labels)
    assert {f["state"] for f in steps} == {"started", "completed"}
    logged = [f["message"] for f in frames if f["type"] == "workflow:log"]
    assert "writing about ducks" in logged
    assert frames[-1]["state"] == "completed"

    run = pane.ask(kind="open", run_id=run_id)["run"]
    assert run["status"]["state"] == "completed"
    assert {s["label"] for s in run["steps"]} == labels
    assert {s["state"] for s in run["steps"]} == {"completed"}
    assert run["result"]["topic"] == "ducks"
    assert "writing about ducks" in [line["message"] for line in run["logs"]]

    listed = pane.ask(kind="runs")
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert listed["session_id"] == pane.widget.session_id


def test_rerun_uses_the_same_arguments_and_answers_every_agent_from_the_cache(
    pane: Pane,
) -> None:
    first = pane.ask(kind="run", workflow="all-types", args={"topic": "geese"})["run_id"]
    pane.frames_until_ended(first)
    again = pane.ask(kind="rerun", run_id=first)
    assert again["kind"] == "started", again
    assert again["workflow"] == "all-types" and again["run_id"] not in (None, first)
    frames = pane.frames_until_ended(again["run_id"])
    status = frames[-1]
    assert status["state"] == "completed"
    assert status["agents_cached"] == status["agents_total"] == 2
    run = pane.ask(kind="open", run_id=again["run_id"])["run"]
    assert [s["state"] for s in run["steps"]] == ["cached", "cached"]
    assert run["args"]["topic"] == "geese"


def test_rerun_of_a_run_that_left_out_an_optional_argument_without_default(
    pane: Pane,
) -> None:
    folder = config.get_settings().project / ".boocode" / "workflows"
    (folder / "optional.py").write_text(
        'workflow = {"name": "optional", "description": "An optional object.", '
        '"args": {"extra": {"type": "object", "required": False}}}\n'
        'def run(args):\n    return args["extra"]\n'
    )
    pane.ask(kind="workflows", refresh=True)
    first = pane.ask(kind="run", workflow="optional", args={})["run_id"]
    pane.frames_until_ended(first)
    again = pane.ask(kind="rerun", run_id=first)
    assert again["kind"] == "started", again
    assert pane.frames_until_ended(again["run_id"])[-1]["state"] == "completed"


def test_cancel_stops_a_running_run(pane: Pane, runtime: Runtime) -> None:
    runtime.simulator().add_rule(Rule("slow", latency=30, reply="x"))
    run_id = pane.ask(kind="run", workflow="all-types", args={"topic": "slow"})["run_id"]
    while not any(f["type"] == "workflow:step" and f["state"] == "started" for f in pane.frames):
        message = pane.sent.get(timeout=30)
        if message["kind"] == "frames":
            pane.frames.extend(message["frames"])
    reply = pane.ask(kind="cancel", run_id=run_id)
    assert reply == {"kind": "cancel", "request_id": reply["request_id"], "run_id": run_id,
                     "stopped": True}
    frames = pane.frames_until_ended(run_id, timeout=10)
    assert frames[-1]["state"] == "cancelled"
    assert pane.ask(kind="cancel", run_id=run_id)["stopped"] is False


def test_the_run_pane_gets_the_frames_of_its_run_only(runtime: Runtime, pane: Pane) -> None:
    mine = runtime.workflows.run("all-types", {"topic": "mine"})
    solo = Pane(Orchestrator(mine, runtime=runtime))
    try:
        assert solo.widget.mode == "run" and solo.widget.run_id == str(mine)
        other = runtime.workflows.run("all-types", {"topic": "other"})
        runtime.workflows.wait(mine, timeout=60)
        runtime.workflows.wait(other, timeout=60)
        pane.frames_until_ended(str(other))  # the orchestrator got the other run's frames
        solo.frames_until_ended(str(mine))
        assert {f["run_id"] for f in solo.frames} == {str(mine)}
    finally:
        solo.widget.close()


def test_an_agents_traces_open_in_a_trace_viewer(pane: Pane) -> None:
    run_id = pane.ask(kind="run", workflow="all-types", args={"topic": "owls"})["run_id"]
    steps = [f for f in pane.frames_until_ended(run_id) if f["type"] == "workflow:step"]
    chat_id = next(s["chat_id"] for s in steps if s["chat_id"] is not None)
    reply = pane.ask(kind="traces", chat_id=chat_id)
    assert reply["kind"] == "traces" and reply["chat_id"] == chat_id
    assert reply["widget"].startswith("anywidget:")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"kind": "nope"}, "kind"),
        ({"kind": "open", "run_id": "not-a-uuid"}, "run_id"),
        ({"kind": "open", "run_id": str(uuid.UUID(int=7))}, "no workflow run"),
        ({"kind": "validate", "workflow": "no-such", "args": {}}, "no workflow named 'no-such'"),
        ({"kind": "rerun", "run_id": str(uuid.UUID(int=7))}, "no workflow run"),
        ({"kind": "runs", "cursor": "garbage"}, "cursor"),
    ],
)
def test_bad_requests_get_an_error_reply_that_says_what_is_wrong(
    pane: Pane, request_: dict[str, Any], expected: str
) -> None:
    reply = pane.ask(**request_)
    assert reply["kind"] == "error"
    assert expected in reply["message"]


def test_static_fallbacks_show_the_workflows_and_a_runs_steps(
    runtime: Runtime, pane: Pane
) -> None:
    text, page = pane.widget.static()
    assert "all-types" in text and "deep-research" in text and "No runs" in text
    assert "<table>" in page and "all-types" in page
    run_id = runtime.workflows.run("all-types", {"topic": "<b>bold</b>"})
    runtime.workflows.wait(run_id, timeout=60)
    solo = Orchestrator(run_id, runtime=runtime)
    try:
        text, page = solo.static()
        assert "all-types" in text and "completed" in text
        assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    finally:
        solo.close()


def test_a_run_id_that_is_no_uuid_is_refused_with_what_to_give(runtime: Runtime) -> None:
    from boonb.errors import BoonbError

    with pytest.raises(BoonbError, match="not a run id"):
        Orchestrator("nope", runtime=runtime)



def _ipython(code: str, project: Path) -> subprocess.CompletedProcess[str]:
    """Terminal IPython (no kernel, no widgets) running ``code`` in ``project``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOONB_")}
    environment.update(BOONB_PROJECT=str(project))
    for key in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY"):
        environment.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=project,
    )


def test_terminal_ipython_gets_the_orchestrator_and_a_run_as_text_lines(tmp_path: Path) -> None:
    folder = tmp_path / ".boocode" / "workflows"
    folder.mkdir(parents=True)
    (folder / "all_types.py").write_text(ALL_TYPES)
    code = (
        "%load_ext boonb\n"
        "print('---orchestrator')\n"
        "%workflow\n"
        "print('---run')\n"
        "%workflow run all-types --args '{\"topic\": \"owls\"}'\n"
    )
    result = _ipython(code, tmp_path)
    assert result.returncode == 0, result.stderr
    orchestrator, run = result.stdout.split("---orchestrator\n")[1].split("---run\n")
    assert re.search(r"all-types +project +One argument of each type\.", orchestrator)
    assert "deep-research" in orchestrator and "No runs in this project yet." in orchestrator
    # Each call of the agent by its own label, in its phase.
    assert "[write] ▶ writer #1" in run and "[write] ▶ writer #2" in run
    assert "writing about owls" in run
    assert "completed · 2/2 agents" in run
    assert "<Orchestrator" not in result.stdout


@pytest.mark.parametrize("budget", [10**30, 10**9 + 1])
def test_a_run_request_with_a_budget_beyond_the_limit_is_refused_and_nothing_runs(
    pane: Pane, runtime: Runtime, budget: int
) -> None:
    reply = pane.ask(kind="run", workflow="all-types", args={"topic": "owls"}, budget=budget)
    assert reply["kind"] == "error"
    assert "budget: Input should be less than or equal to 1000000000" in reply["message"]
    assert runtime.workflows.runs().runs == []


def test_a_workflow_cells_pane_names_its_run_as_waited_for_until_the_cell_returns(
    tmp_path: Path,
) -> None:
    """While the cell waits its pane cannot cancel (the kernel answers no request): the
    view reads ``blocking_run`` to say to interrupt the kernel instead."""
    project = tmp_path / "project"
    project.mkdir()
    kernel = Kernel(project)
    try:
        kernel.execute("%load_ext boonb")
        msg_id = kernel.client.execute('%%workflow\nresult = agent("a", prompt="p").run("hi")')
        states: dict[str, dict[str, Any]] = {}
        when_shown: dict[str, Any] = {}
        stdout = ""
        while True:
            msg = kernel.client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("comm_open", "comm_msg"):
                state = content["data"].get("state", {})
                states.setdefault(content["comm_id"], {}).update(state)
            elif kind == "display_data":
                view = content["data"].get("application/vnd.jupyter.widget-view+json")
                if view is not None:
                    when_shown = dict(states[view["model_id"]])
            elif kind == "stream" and content["name"] == "stdout":
                stdout += content["text"]
            elif kind == "status" and content["execution_state"] == "idle":
                break
        run_id = re.search(r"run ([0-9a-f-]{36})", stdout)
        assert run_id is not None, stdout
        assert when_shown["mode"] == "run" and when_shown["run_id"] == run_id[1]
        assert when_shown["blocking_run"] == run_id[1]
        (pane,) = [s for s in states.values() if s.get("run_id") == run_id[1]]
        assert pane["blocking_run"] == ""
    finally:
        kernel.stop()
