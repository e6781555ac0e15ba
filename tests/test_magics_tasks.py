"""``%tasks``: the pane, and list|status|result|cancel|retry, in a real IPython on the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from boonb.magics.lines import parse_subcommand
from boonb.magics.tasks import TASKS_COMMANDS, TASKS_HELP, TasksMagics, TasksPaneLine

pytestmark = pytest.mark.slow


def _ipython(code: str, project: Path) -> subprocess.CompletedProcess[str]:
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


def test_tasks_list_status_and_result_of_a_spawned_task(tmp_path: Path) -> None:
    code = (
        "%load_ext boonb\n"
        "import boonb\n"
        "h = boonb.spawn('Say hello', metadata={'name': 'greeter'})\n"
        "h.wait(60)\n"
        "ID = str(h.task_id)\n"
        "print('---list')\n"
        "%tasks list\n"
        "print('---status')\n"
        "%tasks status $ID\n"
        "print('---result')\n"
        "%tasks result $ID\n"
        "print('---status again')\n"
        "%tasks status $ID\n"
    )
    result = _ipython(code, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    listed = out.split("---list\n")[1].split("---status\n")[0]
    assert listed.startswith("Background tasks: 1 (0 running)\n")
    assert "completed    greeter  (" in listed and "turns" in listed
    status = out.split("---status\n")[1].split("---result\n")[0]
    assert status.startswith("task ") and "· completed · attempt 1" in status
    assert "  greeter\n" in status
    answer = out.split("---result\n")[1].split("---status again\n")[0]
    assert answer.startswith("greeter · ") and "turns" in answer and "tokens" in answer
    assert "[simulator]" in answer  # the subagent's answer follows its summary
    assert "Traceback" not in result.stderr + out


def test_tasks_cancel_stops_a_task_and_retry_runs_it_again(tmp_path: Path) -> None:
    code = (
        "%load_ext boonb\n"
        "import boonb\n"
        "h = boonb.spawn('Say hello', metadata={'name': 'to stop'})\n"
        "ID = str(h.task_id)\n"
        "%tasks cancel $ID\n"
        "print('state', h.wait(60).state)\n"
        "%tasks retry $ID\n"
        "%tasks cancel $ID\n"
    )
    result = _ipython(code, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "boonb: cancelling task " in out or " is cancelled" in out
    assert "state cancelled" in out
    assert "runs again as task " in out and "(attempt 2, pending)" in out
    # Cancelling the old, ended task again says so on one line, with what to do instead.
    errors = [line for line in result.stderr.splitlines() if line.startswith("boonb: task ")]
    assert len(errors) == 1 and "already ended (cancelled)" in errors[0]
    assert "%tasks retry " in errors[0]


def test_tasks_with_no_subcommand_shows_the_pane(tmp_path: Path) -> None:
    # Terminal IPython has no widget manager: the pane's readable text is what shows.
    result = _ipython("%load_ext boonb\n%tasks\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Background tasks: 0 (0 running)" in result.stdout
    assert "none yet" in result.stdout


def test_a_task_id_that_is_not_one_gets_one_line_saying_what_to_give(tmp_path: Path) -> None:
    result = _ipython(
        "%load_ext boonb\n%tasks status nope\n%tasks result 00000000-0000-0000-0000-000000000007\n",
        tmp_path,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("boonb:")]
    assert len(lines) == 2, result.stderr
    assert "'nope' is not a task id" in lines[0]
    assert "no task 00000000-0000-0000-0000-000000000007" in lines[1]
    assert "%tasks list" in lines[1]
    assert "Traceback" not in result.stderr  # none through the magic, none from the worker at exit


@pytest.mark.parametrize(
    ("line", "says", "usage"),
    [
        ("launch", "unknown subcommand 'launch'", "usage: %tasks status ID"),
        ("status", "ID is missing", "usage: %tasks status ID"),
        ("status a b", "unexpected word 'b'", "usage: %tasks status ID"),
        ("list --all", "unknown option --all", "usage: %tasks list"),
    ],
)
def test_a_bad_line_says_what_is_wrong_with_the_usage_of_tasks_help(
    line: str, says: str, usage: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_subcommand(line, TASKS_COMMANDS, others=[TasksPaneLine])
    message = str(caught.value)
    assert message.startswith(says)
    assert usage in message.splitlines()
    assert usage in TASKS_HELP.splitlines()  # %tasks? shows the same usage lines
    assert TasksMagics.tasks.__doc__ == TASKS_HELP
