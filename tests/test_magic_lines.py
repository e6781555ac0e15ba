"""Magic lines read into pydantic models: good lines, bad lines, and the usage both show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from boonb.magics.agent import (
    AGENT_COMMANDS,
    AgentMagics,
    AgentPrompt,
    AgentResume,
    AgentSessions,
)
from boonb.magics.lines import parse_subcommand, split_line
from boonb.magics.status import BoonbConfig, BoonbMagics, BoonbStatus
from boonb.magics.traces import TracesLine, TracesMagics
from boonb.magics.workflow import (
    WORKFLOW_COMMANDS,
    WorkflowCancel,
    WorkflowCell,
    WorkflowList,
    WorkflowMagics,
    WorkflowRunLine,
    WorkflowStatusLine,
)
from tests.kernels import Kernel


def workflow_line(line: str) -> object:
    return parse_subcommand(line, WORKFLOW_COMMANDS, others=[WorkflowCell])


# -- good lines ---------------------------------------------------------------------------


def test_agent_options_are_read_without_their_shell_quotes() -> None:
    line = "--model 'sim-chat' --tools \"read_file, run_python\" --budget 500 --max-turns 3"
    assert AgentPrompt.parse(line) == AgentPrompt(
        model="sim-chat", tools=["read_file", "run_python"], budget=500, max_turns=3
    )


def test_agent_options_default_to_all_tools_ten_turns_and_waiting() -> None:
    assert AgentPrompt.parse("") == AgentPrompt(
        model=None, tools=None, budget=None, max_turns=10, chat=None, no_wait=False
    )


def test_tools_none_means_no_tools_and_an_option_may_use_an_equals_sign() -> None:
    options = AgentPrompt.parse("--tools=none --no-wait --chat=abc")
    assert options.tools == [] and options.no_wait and options.chat == "abc"


def test_agent_subcommands_read_their_own_words() -> None:
    assert parse_subcommand("sessions", AGENT_COMMANDS) == AgentSessions(all=False)
    assert parse_subcommand("sessions --all", AGENT_COMMANDS) == AgentSessions(all=True)
    assert parse_subcommand("resume", AGENT_COMMANDS) == AgentResume(chat=None)
    assert parse_subcommand("resume 'abc-1'", AGENT_COMMANDS) == AgentResume(chat="abc-1")


def test_args_takes_an_unquoted_json_object_with_spaces_as_people_type_it() -> None:
    line = 'run deep-research --args {"question": "what is prompt caching"} --no-wait'
    assert workflow_line(line) == WorkflowRunLine(
        name="deep-research", args={"question": "what is prompt caching"}, no_wait=True
    )


def test_args_takes_a_quoted_json_object_too() -> None:
    line = """run plan-verify --args '{"a": 1, "b": [1, "x y"]}' --budget 900 --timeout 2.5"""
    assert workflow_line(line) == WorkflowRunLine(
        name="plan-verify", args={"a": 1, "b": [1, "x y"]}, budget=900, timeout=2.5
    )


def test_args_with_an_equals_sign_takes_an_unquoted_json_object_too() -> None:
    line = 'run r --args={"question": "what is prompt caching"} --no-wait'
    assert workflow_line(line) == WorkflowRunLine(
        name="r", args={"question": "what is prompt caching"}, no_wait=True
    )


def test_an_unquoted_json_object_keeps_quotes_and_braces_inside_its_strings() -> None:
    words = split_line('--args {"q": "it\'s {not} \\"over\\""}  --no-wait')
    assert words == ["--args", '{"q": "it\'s {not} \\"over\\""}', "--no-wait"]


def test_workflow_cell_and_line_subcommands() -> None:
    assert WorkflowCell.parse('--args {"topic": "ducks"} --budget 50000') == WorkflowCell(
        args={"topic": "ducks"}, budget=50000
    )
    assert workflow_line("list") == WorkflowList(refresh=False)
    assert workflow_line("list --refresh") == WorkflowList(refresh=True)
    assert workflow_line("status 1234") == WorkflowStatusLine(run="1234")
    assert workflow_line("cancel 1234") == WorkflowCancel(run="1234")


def test_boonb_config_reads_assignments_by_field_or_variable_name() -> None:
    options = BoonbConfig.parse("db_path='a b.duckdb' BOONB_FLUSH_INTERVAL_MS=500")
    assert options.changes == {"db_path": "a b.duckdb", "flush_interval_ms": "500"}
    assert BoonbConfig.parse("").changes == {}
    assert BoonbStatus.parse("") == BoonbStatus()


def test_traces_takes_an_optional_chat() -> None:
    assert TracesLine.parse("") == TracesLine(chat=None)
    assert TracesLine.parse("'abc'") == TracesLine(chat="abc")


# -- bad lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("--model ''", "--model is empty; give a value or leave the option out"),
        ("--model", "--model needs a value (NAME)"),
        ("--model --no-wait", "--model needs a value (NAME)"),
        ("--budget abc", "--budget: input should be a valid integer"),
        ("--budget 0", "--budget: input should be greater than 0"),
        ("--max-turns 0", "--max-turns: input should be greater than or equal to 1"),
        ("--nope 1", "unknown option --nope"),
        ("hello", "unexpected word 'hello'"),
        ("--no-wait=yes", "--no-wait is a flag and takes no value"),
        ("--model a --model b", "--model is given twice"),
        ("--model 'sim", "cannot read the options (No closing quotation); check the quotes"),
    ],
)
def test_a_bad_agent_line_says_what_is_wrong_then_the_usage(line: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        AgentPrompt.parse(line)
    message = str(caught.value)
    assert message.startswith(problem)
    assert message.endswith("\n" + AgentPrompt.usage())


@pytest.mark.parametrize(
    ("line", "problem", "usage"),
    [
        ("", "no subcommand given", WorkflowCell.usage()),
        ("start x", "unknown subcommand 'start'", WorkflowRunLine.usage()),
        ("run", "NAME is missing", WorkflowRunLine.usage()),
        ("run a b", "unexpected word 'b'", WorkflowRunLine.usage()),
        ("run a --args", "--args needs a value (JSON)", WorkflowRunLine.usage()),
        ('run a --args {"a": 1', "--args is not valid JSON", WorkflowRunLine.usage()),
        ("run a --args nope", "--args is not valid JSON (Expecting value)", ""),
        ("run a --args [1, 2]", "--args must be a JSON object", WorkflowRunLine.usage()),
        ("run a --timeout soon", "--timeout: input should be a valid number", ""),
        ("list --all", "unknown option --all", WorkflowList.usage()),
        ("status", "RUN is missing", WorkflowStatusLine.usage()),
        ("cancel a b", "unexpected word 'b'", WorkflowCancel.usage()),
    ],
)
def test_a_bad_workflow_line_says_what_is_wrong_then_the_usage(
    line: str, problem: str, usage: str
) -> None:
    with pytest.raises(UsageError) as caught:
        workflow_line(line)
    message = str(caught.value)
    assert message.startswith(problem)
    assert "\nusage: " in message and usage in message


def test_bad_config_and_traces_lines() -> None:
    with pytest.raises(UsageError, match="expected KEY=VALUE, got 'db_path'"):
        BoonbConfig.parse("db_path")
    with pytest.raises(UsageError, match="expected KEY=VALUE, got '=1'"):
        BoonbConfig.parse("=1")
    with pytest.raises(UsageError, match="unexpected word 'b'\nusage: %traces"):
        TracesLine.parse("a b")


def test_a_bad_line_is_exactly_ipythons_usage_error() -> None:
    # IPython shows only the exact class as one line; a subclass gets a traceback.
    with pytest.raises(UsageError) as caught:
        AgentPrompt.parse("--nope")
    assert type(caught.value) is UsageError


# -- the same usage in %magic? ------------------------------------------------------------


@pytest.mark.parametrize(
    ("magic", "lines"),
    [
        (AgentMagics.agent, [AgentPrompt, AgentSessions, AgentResume]),
        (WorkflowMagics.workflow, [WorkflowCell, *WORKFLOW_COMMANDS.values()]),
        (BoonbMagics.boonb, [BoonbStatus, BoonbConfig]),
        (TracesMagics.traces, [TracesLine]),
    ],
)
def test_the_magic_help_shows_the_usage_its_errors_show(magic: object, lines: list) -> None:
    doc = (getattr(magic, "__doc__", None) or "").splitlines()
    for line in lines:
        assert line.usage() in doc
        assert all(described in doc for described in line.option_help())


# -- in a kernel --------------------------------------------------------------------------


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    project = tmp_path / "project"
    project.mkdir()
    k = Kernel(project)
    k.execute("%load_ext boonb")
    yield k
    k.stop()


@pytest.mark.slow
def test_workflow_run_takes_unquoted_json_args_in_a_kernel(kernel: Kernel) -> None:
    out = kernel.execute(
        '%workflow run deep-research --args {"question": "what is prompt caching"}'
    )
    assert not out["error"], out
    assert "UsageError" not in "".join(out["stderr"]), out
    assert "completed" in "".join(out["stdout"]), out
    help_text = kernel.execute("print(get_ipython().find_line_magic('workflow').__doc__)")
    assert WorkflowRunLine.usage() in "".join(help_text["stdout"])
