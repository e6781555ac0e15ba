"""Agents and their subagents: spawning from a tool call, being told of finished tasks,
collecting results, the trace tree, the depth limit, and asking about others' tasks.

The simulator's rules play the models (see ``tests/test_sim_planner.py``); rules naming a
task id are added once the id exists, as a model reads it from its conversation.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest

from boonb import config
from boonb.agent.tools.definition import tool
from boonb.frames import TaskUpdate
from boonb.sim import Rule
from boonb.store.projections import walk
from tests.background_kit import WAIT_S, Kit, make_kit

SUBS = ("sub alpha", "sub beta", "sub gamma")


@pytest.fixture
def kit() -> Iterator[Kit]:
    config.update(background_poll_interval_s=0.1)
    yield from make_kit()


def _tasks(kit: Kit) -> dict[uuid.UUID, TaskUpdate]:
    return {u.task_id: u for u in kit.tasks.list()}


def test_an_agent_spawns_three_goes_on_is_told_they_finished_and_collects_them(
    kit: Kit,
) -> None:
    seen_while_working: list[str] = []

    @tool
    def own_work() -> str:
        """The main agent's own work, done while its subagents run."""
        seen_while_working.extend(u.state for u in _tasks(kit).values())
        ids = list(_tasks(kit))
        kit.sim.add_rule(  # the model asks for the results of the tasks it was told of
            Rule(
                "finished since your last turn",
                tool_calls=[
                    {"name": "subagent_result", "arguments": {"task_id": str(i)}} for i in ids
                ],
            )
        )
        kit.gate("subs").set()
        for task_id in ids:  # so the next model call is told of all three at once
            kit.tasks.wait(task_id, WAIT_S)
        return "my own part is done"

    kit.tasks.tools.register(own_work)
    spawns = [
        {"name": "spawn_subagent", "arguments": {"prompt": p, "tools": ["gate"]}} for p in SUBS
    ]
    kit.sim.add_rule(Rule("^Fan out", tool_calls=spawns))
    kit.sim.add_rule(
        Rule('"status": "pending"', role="tool", tool_calls=[{"name": "own_work", "arguments": {}}])
    )
    kit.sim.add_rule(Rule("^sub ", tool_calls=[{"name": "gate", "arguments": {"name": "subs"}}]))
    kit.sim.add_rule(Rule('"answer"', role="tool", reply="collected all three"))
    main = kit.tasks.agents.new_agent(
        tools=["spawn_subagent", "subagent_result", "own_work"], max_turns=6
    )

    result = kit.engine.run(main.run("Fan out the research"))

    assert result.content == "collected all three"
    assert seen_while_working and set(seen_while_working) <= {"pending", "running"}
    tasks = _tasks(kit)
    assert sorted(u.title for u in tasks.values()) == sorted(SUBS)
    notes = [m["content"] for m in main.messages if m["role"] == "user"][1:]
    assert len(notes) == 1 and all(str(i) in notes[0] for i in tasks)
    collected = [json.loads(m["content"]) for m in main.messages[-4:-1]]
    assert {c["task_id"] for c in collected} == {str(i) for i in tasks}
    assert all(c["status"] == "completed" and c["result"]["answer"] for c in collected)
    assert all(u.state == "read" for u in tasks.values())

    kit.store.writer.flush()
    tree = kit.store.traces.tree(main.chat_id)
    assert tree is not None
    spawn_calls = [n for n in walk(tree.nodes) if n.trace.tool_name == "spawn_subagent"]
    assert len(spawn_calls) == 3
    hung = {}
    for call in spawn_calls:
        (chat,) = {child.trace.chat_id for child in call.children}
        assert all(child.trace.kind == "model" for child in call.children)
        hung[chat] = call.trace.id
    assert set(hung) == {u.chat_id for u in tasks.values()}
    by_chat = {u.chat_id: u for u in tasks.values()}
    assert all(by_chat[chat].parent_trace_id == call for chat, call in hung.items())
    chats = kit.rows("SELECT id, parent_id, root_id FROM chats WHERE parent_id IS NOT NULL")
    assert {(c, p, r) for c, p, r in chats} == {(c, t, main.chat_id) for c, t in hung.items()}


def test_subagents_spawn_only_when_given_the_tool_and_never_past_the_depth_limit(
    kit: Kit,
) -> None:
    def spawn(when: str, prompt: str, tools: list[str] | None) -> Rule:
        arguments = {"prompt": prompt} if tools is None else {"prompt": prompt, "tools": tools}
        return Rule(when, tool_calls=[{"name": "spawn_subagent", "arguments": arguments}])

    kit.sim.add_rule(spawn("^level0", "level1 go", ["spawn_subagent"]))
    kit.sim.add_rule(spawn("^level1", "level2 go", ["spawn_subagent"]))
    kit.sim.add_rule(spawn("^level2", "level3 go", None))
    main = kit.tasks.agents.new_agent(tools=["spawn_subagent"], max_turns=3)

    kit.engine.run(main.run("level0 go"))
    level1 = kit.until(
        lambda: [u for u in _tasks(kit).values() if u.title == "level1 go"], "level 1"
    )[0]
    kit.tasks.wait(level1.task_id, WAIT_S)
    level2 = kit.until(
        lambda: [u for u in _tasks(kit).values() if u.title == "level2 go"], "level 2"
    )[0]
    ended = kit.tasks.wait(level2.task_id, WAIT_S)
    plain = kit.tasks.spawn("plain go")
    kit.tasks.wait(plain.task_id, WAIT_S)

    assert ended.state == "completed"
    assert sorted(u.title for u in _tasks(kit).values()) == ["level1 go", "level2 go", "plain go"]
    refused = kit.rows(
        "SELECT error FROM tool_traces WHERE chat_id = ? AND tool_name = 'spawn_subagent'",
        ended.chat_id,
    )
    assert len(refused) == 1 and "the limit is 2" in refused[0][0]
    plain_agent = kit.agents[kit.tasks.get(plain.task_id).chat_id]
    assert not {"spawn_subagent", "subagent_status", "subagent_result"} & set(plain_agent.tools)
    assert "gate" in plain_agent.tools  # the kernel's other tools it does get


def test_asking_about_a_task_another_agent_spawned_is_a_tool_error_the_model_reads(
    kit: Kit,
) -> None:
    theirs = kit.tasks.spawn("someone else's job", tools=[])
    kit.sim.add_rule(
        Rule(
            "^peek",
            tool_calls=[{"name": "subagent_status", "arguments": {"task_id": str(theirs.task_id)}}],
        )
    )
    main = kit.tasks.agents.new_agent(tools=["subagent_status"], max_turns=3)

    result = kit.engine.run(main.run("peek at that task"))

    assert result.stop_reason == "final"
    tool_message = next(m for m in main.messages if m["role"] == "tool")
    assert tool_message["content"].startswith("Error: ")
    assert "was not spawned by you" in tool_message["content"]


def test_spawn_subagent_answers_once_the_task_row_is_on_disk() -> None:
    # The writer's own timer would take a minute, and its thread is held busy until a
    # timer lets go: an answer given before the commit finds no row.
    busy = threading.Event()
    for kit in make_kit(flush_interval=60):
        kit.store.writer.when_written(lambda _: busy.wait(WAIT_S), outlive_stall=True)
        threading.Timer(0.5, busy.set).start()
        answer = kit.call("spawn_subagent", {"prompt": "Say hello"})
        with kit.store.db.connection() as con:
            stored = con.execute(
                "SELECT state FROM tasks WHERE id = ?", [uuid.UUID(answer["task_id"])]
            ).fetchall()
        assert answer["status"] == "pending" and len(stored) == 1
