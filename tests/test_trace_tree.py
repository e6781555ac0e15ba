"""One trace tree: parents and roots on the agent's path, across chats a tool call starts."""

from __future__ import annotations

import uuid

from boonb.agent import Agent, ToolContext, tool
from boonb.agent.recorder import Recorder, TraceParent, calling_trace
from boonb.providers import ChatClient, get_profile
from boonb.sim import Rule
from tests.conftest import Env


def _child_agent(env: Env, parent: TraceParent | None) -> Agent:
    profile = get_profile("sim").with_overrides(base_url=env.sim.base_url)
    recorder = Recorder(
        env.bus,
        env.store.writer.enqueue,
        session_id=uuid.uuid4(),
        chat_id=uuid.uuid4(),
        parent=parent,
    )
    return Agent(
        ChatClient(profile, max_retries=0),
        recorder=recorder,
        tools=[],
        context=ToolContext(project_root=env.project),
    )


def test_a_chat_a_tool_starts_hangs_under_that_tool_call_in_the_same_tree(env: Env) -> None:
    children: list[uuid.UUID] = []

    @tool
    async def ask_helper(question: str) -> str:
        """Ask a helper agent."""
        child = _child_agent(env, calling_trace())
        children.append(child.chat_id)
        return (await child.run(question)).content

    env.sim.add_rule(
        Rule("delegate", tool_calls=[{"name": "ask_helper", "arguments": {"question": "two?"}}])
    )
    parent = env.agent(tools=[ask_helper])
    env.run(parent, "please delegate this")
    (child,) = children
    rows = env.rows(
        "SELECT id, chat_id, kind, parent_id, root_id FROM tool_traces ORDER BY started_at, kind"
    )
    by_chat = {c: [r for r in rows if r[1] == c] for c in (parent.chat_id, child)}
    first_model, tool_call = by_chat[parent.chat_id][:2]
    assert tool_call[2] == "tool" and tool_call[3] == first_model[0]
    assert first_model[3] is None and first_model[4] == parent.chat_id  # the chat is the root
    child_first = by_chat[child][0]
    assert child_first[2] == "model"
    assert child_first[3] == tool_call[0] and child_first[4] == parent.chat_id
    assert {r[4] for r in rows} == {parent.chat_id}
    assert env.rows("SELECT parent_id, root_id FROM chats WHERE id = ?", child) == [
        (tool_call[0], parent.chat_id)
    ]


def test_a_tool_call_hangs_under_the_model_call_that_asked_for_it(env: Env) -> None:
    env.sim.add_rule(
        Rule("notes", tool_calls=[{"name": "read_file", "arguments": {"path": "notes.txt"}}])
    )
    agent = env.agent()
    env.run(agent, "read the notes")
    env.run(agent, "read the notes again")
    rows = env.rows(
        "SELECT id, kind, turn_number, parent_id, root_id FROM tool_traces ORDER BY started_at"
    )
    models = {turn: trace_id for trace_id, kind, turn, *_ in rows if kind == "model"}
    tools = [r for r in rows if r[1] == "tool"]
    assert len(tools) == 2
    assert all(parent == models[turn] for _, _, turn, parent, _ in tools)
    assert {root for *_, root in rows} == {agent.chat_id}


def test_outside_a_tool_call_there_is_no_calling_trace() -> None:
    assert calling_trace() is None
