"""%%workflow and %workflow in a real kernel; runs a dead kernel left behind read as interrupted."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boonb.runtime import Runtime
from boonb.store import make_row
from tests.kernels import Kernel

pytestmark = pytest.mark.slow

SCRIPT = """%%workflow --args '{"topic": "ducks"}' --budget 50000
log("researching " + args["topic"])
scout = agent("scout", prompt="You find facts.")
writer = agent("writer", prompt="You write.")
facts = phase("gather", agents=[(scout, args["topic"])])
result = writer.run(facts["scout"])
"""


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    project = tmp_path / "project"
    project.mkdir()
    k = Kernel(project)
    k.execute("%load_ext boonb")
    yield k
    k.stop()


def test_workflow_cell_shows_live_progress_then_the_result(kernel: Kernel) -> None:
    out = kernel.execute(SCRIPT)
    assert not out["error"], out
    text = "".join(out["stdout"])
    # The simulator's one-time notice, an ordinary stdout line, may come first.
    lines = [line for line in text.splitlines() if not line.startswith("boonb: no API key")]
    # A kernel shows the run's pane (tests/test_widgets_orchestrator.py), live: no second
    # copy of its events as text, only the summary line once it ended.
    (summary,) = lines
    assert summary.startswith("completed · 2/2 agents"), out
    assert "of 50,000" in summary
    (result,) = out["result"]
    assert "[simulator]" in result


def test_workflow_line_commands_list_run_status_and_cancel(kernel: Kernel) -> None:
    listed = "".join(kernel.execute("%workflow list")["stdout"])
    for name in ("deep-research", "multi-review", "plan-verify", "bounty-hunt"):
        assert name in listed
    out = kernel.execute("%workflow run plan-verify --args '{\"goal\": \"add tests\"}'")
    assert not out["error"] and "completed" in "".join(out["stdout"])
    kernel.execute("from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"
                   "get_runtime().simulator().add_rule(Rule('slow', latency=30, reply='x'))")
    out = kernel.execute("run = %workflow run bounty-hunt --no-wait --args "
                         "'{\"target\": \"slow\", \"foci\": [\"slow\"]}'\nprint(run)")
    run_id = "".join(out["stdout"]).strip()
    uuid.UUID(run_id)
    deadline = time.monotonic() + 30
    while True:  # until its agents are at work (the run starts pending)
        status = kernel.execute(f"%workflow status {run_id}")["result"][0]
        if " · pending" not in status.splitlines()[1] or time.monotonic() > deadline:
            break
    assert status.splitlines()[1].startswith("bounty-hunt · running")
    kernel.execute(f"%workflow cancel {run_id}")
    deadline = time.monotonic() + 5
    while "cancelled" not in kernel.execute(f"%workflow status {run_id}")["result"][0]:
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.1)
    bad = kernel.execute("%workflow run no-such-thing")
    assert "no workflow named 'no-such-thing'" in "".join(bad["stderr"])
    assert not bad["error"]


def test_workflow_status_shows_a_readable_summary_of_steps_logs_and_result(
    kernel: Kernel,
) -> None:
    out = kernel.execute(SCRIPT.replace("%%workflow", "%%workflow --no-wait", 1))
    run_id = str(uuid.UUID(out["result"][0].removeprefix("UUID('").removesuffix("')")))
    kernel.execute(
        "from boonb.runtime import get_runtime\n"
        f"get_runtime().workflows.wait('{run_id}', timeout=60)"
    )
    out = kernel.execute(f"report = %workflow status {run_id}\nreport")
    assert not out["error"] and not out["stdout"], out
    (text,) = out["result"]
    lines = text.splitlines()
    assert lines[0] == f"run {run_id}"
    assert lines[1].startswith("<cell> · completed · 2/2 agents · ")
    assert " of 50,000 tokens · " in lines[1]
    assert lines[2] == "steps:"
    scout, writer = lines[3:5]
    assert scout.startswith("  ✓ [gather] scout:") and " completed, " in scout
    assert writer.startswith("  ✓ writer:") and writer.endswith(" s")
    assert "tokens" in scout and "tokens" in writer
    assert "log (last 5 of 5):" in lines and "  researching ducks" in lines
    assert "  [gather] scout: → list_files" in lines  # the scout's tool calls are logged
    assert any(line.startswith("result: [simulator]") for line in lines)
    assert "RunReport" not in text and "run_id=" not in text  # no object dump
    data = kernel.execute("print(report.detail.status.state, len(report.detail.steps))")
    assert "".join(data["stdout"]).strip() == "completed 2"
    bad = kernel.execute("%workflow status not-a-run")
    assert "'not-a-run' is not a run id" in "".join(bad["stderr"]) and not bad["error"]


def test_the_kernel_interrupt_cancels_a_workflow_cell(kernel: Kernel) -> None:
    kernel.execute("from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"
                   "get_runtime().simulator().add_rule(Rule('slow', latency=30, reply='x'))")
    pid = kernel.manager.provisioner.pid  # type: ignore[union-attr]
    threading.Timer(2.0, os.kill, (pid, signal.SIGINT)).start()
    out = kernel.execute('%%workflow\nresult = agent("a", prompt="p").run("slow")')
    assert "cancelled" in "".join(out["stderr"])  # not the model's "x", 30 s later
    assert not out["error"]


def test_runs_left_running_by_a_dead_kernel_read_as_interrupted(tmp_path: Path) -> None:
    runtime = Runtime()
    try:
        run_id = uuid.uuid4()
        runtime.store.writer.enqueue(make_row(
            "workflow_runs",
            {"id": run_id, "workflow": "deep-research", "state": "running",
             "kernel_pid": 2**22 + 4321, "created_at": datetime.now(UTC)},
        ))
        runtime.store.writer.flush()
        assert runtime.workflows.status(run_id).state == "interrupted"
    finally:
        runtime.shutdown()
