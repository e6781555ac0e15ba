"""The simulator's default agent: with file tools offered and no rule, it searches the
project, reads what matched and answers from it, deterministically, in a bounded number
of turns. Requests go over real HTTP; the agent tests run boonb's real file tools."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boonb.agent import default_registry
from boonb.sim import Rule, SimServer
from boonb.sim.planner import MAX_TOOL_TURNS, PLAN_ID_PREFIX, search_term
from tests.conftest import Env

README_PROMPT = 'Which files in this project mention "revenue"? Summarise what they say.'
FILE_TOOLS = [t.openai_schema() for t in default_registry() if t.name != "write_file"]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http


def answer(client: httpx.Client, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The assistant message the simulator returns for ``messages``."""
    body = {"model": "deepseek-chat", "messages": messages, "tools": FILE_TOOLS, **extra}
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]


def calls_of(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or ()
    ]


def tool_turn(message: dict[str, Any], *results: Any) -> list[dict[str, Any]]:
    """The assistant's tool-call message and one tool message per call, as an agent sends."""
    turn: list[dict[str, Any]] = [message]
    for call, result in zip(message["tool_calls"], results, strict=True):
        content = result if isinstance(result, str) else json.dumps(result)
        turn.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return turn


GREP_REVENUE = {
    "matches": [
        "report.md:1:Q3 revenue grew 12% to 4.1M.",
        "report.md:3:Revenue from services fell.",
        "sales.csv:1:region,quarter,revenue",
    ],
    "files_searched": 3,
    "truncated": False,
}


# -- choosing what to do ----------------------------------------------------------------------


def test_first_turn_greps_for_the_quoted_term_and_says_nothing_yet(client: httpx.Client) -> None:
    first = answer(client, [{"role": "user", "content": README_PROMPT}])
    assert calls_of(first) == [("grep", {"pattern": "(?i)revenue"})]
    assert first["content"] is None
    assert all(c["id"].startswith(PLAN_ID_PREFIX) for c in first["tool_calls"])


@pytest.mark.parametrize(
    ("prompt", "term"),
    [
        ('Which files mention "gross margin"?', "gross margin"),
        ("Where is `load_config` used?", "load_config"),
        ("Summarise the sales data in this project.", "sales"),
        ("What's in 'budget.xlsx'?", "budget.xlsx"),
        ("Summarise this project.", None),
        ("", None),
    ],
)
def test_the_search_term_is_the_quoted_text_else_the_longest_salient_word(
    prompt: str, term: str | None
) -> None:
    assert search_term(prompt) == term


def test_without_a_term_it_lists_the_project_first(client: httpx.Client) -> None:
    first = answer(client, [{"role": "user", "content": "Summarise this project."}])
    assert calls_of(first) == [("list_files", {"path": ".", "recursive": True})]


def test_every_file_grep_matched_is_read_in_one_turn(client: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    messages += tool_turn(answer(client, messages), GREP_REVENUE)
    second = answer(client, messages)
    assert calls_of(second) == [
        ("read_file", {"path": "report.md"}),
        ("read_file", {"path": "sales.csv"}),
    ]
    assert len({c["id"] for c in second["tool_calls"]}) == 2


def test_the_answer_quotes_the_lines_of_each_file_that_mention_the_term(
    client: httpx.Client,
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    messages += tool_turn(answer(client, messages), GREP_REVENUE)
    report = {
        "path": "report.md",
        "content": "Q3 revenue grew 12% to 4.1M.\nCosts were flat.\nRevenue from services fell.",
        "total_lines": 3,
    }
    sales = {
        "path": "sales.csv",
        "content": "region,quarter,revenue\nNorth,Q1,24000",
        "total_lines": 2,
    }
    messages += tool_turn(answer(client, messages), report, sales)
    final = answer(client, messages)
    assert final.get("tool_calls") is None
    assert final["content"] == (
        '[simulator] 3 lines in 2 files mention "revenue" (grep searched 3 files). '
        "I read 2 files; here is what they say:\n"
        '- report.md (3 lines): "Q3 revenue grew 12% to 4.1M." "Revenue from services fell."\n'
        '- sales.csv (2 lines): "region,quarter,revenue"'
    )


def test_when_nothing_matches_it_lists_then_reads_files_named_after_the_term(
    client: httpx.Client,
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Summarise the sales data."}]
    messages += tool_turn(answer(client, messages), {"matches": [], "files_searched": 2})
    listing = {
        "path": ".",
        "entries": [{"name": "data/"}, {"name": "data/sales.csv"}, {"name": "notes.txt"}],
    }
    listed = answer(client, messages)
    assert calls_of(listed) == [("list_files", {"path": ".", "recursive": True})]
    messages += tool_turn(listed, listing)
    assert calls_of(answer(client, messages)) == [("read_file", {"path": "data/sales.csv"})]


def test_a_failed_tool_ends_the_plan_with_an_answer_that_names_the_error(
    client: httpx.Client,
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    messages += tool_turn(answer(client, messages), GREP_REVENUE)
    reads = answer(client, messages)
    messages += tool_turn(
        reads,
        "Error: no such file: 'report.md'; use list_files",
        {"path": "sales.csv", "content": "revenue 1"},
    )
    final = answer(client, messages)
    assert final.get("tool_calls") is None
    assert final["content"].startswith("[simulator] ")
    assert "- read_file report.md failed: no such file: 'report.md'" in final["content"]
    assert '- sales.csv (0 lines): "revenue 1"' in final["content"]


def test_an_error_on_the_first_turn_is_answered_not_retried(client: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    messages += tool_turn(answer(client, messages), "Error: tool crashed")
    final = answer(client, messages)
    assert final.get("tool_calls") is None
    assert "grep (?i)revenue failed: tool crashed" in final["content"]


def test_it_never_plans_more_than_the_turn_limit(client: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    grep = answer(client, messages)
    for _ in range(MAX_TOOL_TURNS):  # a conversation where grep keeps being asked for
        messages += tool_turn(grep, GREP_REVENUE)
    final = answer(client, messages)
    assert final.get("tool_calls") is None and final["content"].startswith("[simulator]")


def test_the_same_conversation_gets_the_same_calls_and_answer() -> None:
    def run() -> list[dict[str, Any]]:
        with SimServer() as server, httpx.Client(base_url=server.base_url) as http:
            messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
            first = answer(http, messages)
            messages += tool_turn(first, GREP_REVENUE)
            return [first, answer(http, messages)]

    assert run() == run()


# -- when it stays out of the way -------------------------------------------------------------


def test_no_tools_offered_gives_the_plain_reply_as_before(client: httpx.Client) -> None:
    reply = answer(client, [{"role": "user", "content": README_PROMPT}], tools=[])
    assert reply["content"].startswith('[simulator] This is a simulated reply to: "Which files')
    assert reply.get("tool_calls") is None


def test_tool_choice_none_gives_the_plain_reply(client: httpx.Client) -> None:
    reply = answer(client, [{"role": "user", "content": README_PROMPT}], tool_choice="none")
    assert reply["content"].startswith("[simulator] This is a simulated reply to:")


@pytest.mark.parametrize(
    "tools",
    [
        [
            {
                "type": "function",
                "function": {
                    "name": "word_count",
                    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
                },
            }
        ],
        # A tool named like a built-in whose schema does not take the argument it needs.
        [
            {
                "type": "function",
                "function": {
                    "name": "grep",
                    "parameters": {"type": "object", "properties": {"regex": {"type": "string"}}},
                },
            }
        ],
        ["grep", {"type": "function"}, {"function": "read_file"}, {"function": {"name": 3}}],
    ],
    ids=["unknown-tool", "foreign-grep-schema", "malformed-entries"],
)
def test_tools_it_cannot_fill_get_the_plain_reply(client: httpx.Client, tools: Any) -> None:
    reply = answer(client, [{"role": "user", "content": README_PROMPT}], tools=tools)
    assert reply["content"].startswith("[simulator] This is a simulated reply to:")
    assert reply.get("tool_calls") is None


def test_after_a_rules_tool_calls_it_summarises_and_plans_nothing(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_rule(Rule("revenue", tool_calls=[{"name": "grep", "arguments": {"pattern": "x"}}]))
    messages: list[dict[str, Any]] = [{"role": "user", "content": README_PROMPT}]
    messages += tool_turn(answer(client, messages), GREP_REVENUE)
    reply = answer(client, messages)
    assert reply.get("tool_calls") is None
    assert reply["content"].startswith("[simulator] Tool results: grep → ")


def test_a_rule_with_only_a_latency_still_gets_the_planner(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_rule(Rule("revenue", latency=0.0))
    first = answer(client, [{"role": "user", "content": README_PROMPT}])
    assert calls_of(first) == [("grep", {"pattern": "(?i)revenue"})]


def test_tool_results_that_are_not_json_objects_count_as_failures(client: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Summarise this project."}]
    messages += tool_turn(answer(client, messages), "[1, 2, 3]")
    final = answer(client, messages)
    assert final.get("tool_calls") is None
    assert "list_files . failed: [1, 2, 3]" in final["content"]


# -- a real agent with real tools -------------------------------------------------------------


def test_an_agent_with_all_tools_greps_reads_and_answers_from_the_files(env: Env) -> None:
    (env.project / "report.md").write_text("# Q3\nRevenue grew 12% to 4.1M.\nCosts were flat.\n")
    (env.project / "sales.csv").write_text("region,revenue\nNorth,24000\n")
    result = env.run(env.agent(max_turns=6), README_PROMPT)
    assert result.stop_reason == "final"
    assert (result.stats.turns, result.stats.tool_calls, result.stats.tool_errors) == (3, 3, 0)
    rows = env.rows(
        "SELECT turn_number, kind, tool_name, outcome FROM tool_traces "
        "ORDER BY turn_number, kind, tool_name, input->>'$.path'"
    )
    assert rows == [
        (1, "model", "sim-chat", "success"),
        (1, "tool", "grep", "success"),
        (2, "model", "sim-chat", "success"),
        (2, "tool", "read_file", "success"),
        (2, "tool", "read_file", "success"),
        (3, "model", "sim-chat", "success"),
    ]
    assert '- report.md (3 lines): "Revenue grew 12% to 4.1M."' in result.content
    assert '- sales.csv (2 lines): "region,revenue"' in result.content
    assert "notes.txt" not in result.content  # it mentions no revenue


@pytest.mark.parametrize(
    "prompt",
    ["Say hello", "Summarise this project.", 'Find "missing-term"', "Read ../../etc/passwd"],
)
def test_an_agent_loop_on_the_default_always_ends_with_a_simulator_answer(
    env: Env, prompt: str
) -> None:
    (env.project / "blob.bin").write_bytes(b"\x00\x01binary")  # read_file refuses it
    result = env.run(env.agent(max_turns=20), prompt)
    assert result.stop_reason == "final" and result.stats.turns <= MAX_TOOL_TURNS + 1
    assert result.content.startswith("[simulator] ")
