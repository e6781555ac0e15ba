"""Agents are built in one place, and the workflow manager is built from parts, not a runtime.

Everything here is real: the simulator over HTTP, a DuckDB file, the engine thread and
the workflow sandbox. No Runtime is created, so nothing reaches one behind the test's back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from boonb import api, config
from boonb.agent import Agent, default_registry
from boonb.agent.factory import AgentFactory
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.sessions import SessionSaver
from boonb.agent.tools import UnknownToolError
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.frames import Frame, SessionRestored
from boonb.providers import ChatClient
from boonb.runtime import Runtime
from boonb.sim import SimServer
from boonb.store import STORED_FRAME_TYPES, Store
from boonb.store.agent_sessions import load_snapshot
from boonb.workflow.manager import WorkflowManager


@dataclass
class Parts:
    """What a kernel gives an agent factory, without the kernel's Runtime."""

    engine: Engine
    bus: Bus
    store: Store
    sim: SimServer
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    kept: dict[uuid.UUID, tuple[Agent, SessionSaver]] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)

    def provider(self) -> ProviderChoice:
        return choose_provider(config.get_settings(), sim_base_url=self.sim.base_url)

    def client(self, choice: ProviderChoice) -> ChatClient:
        return ChatClient(choice.profile, api_key=choice.api_key, model=choice.model)

    def keep(self, agent: Agent, saver: SessionSaver) -> None:
        self.kept[agent.chat_id] = (agent, saver)

    def factory(self) -> AgentFactory:
        return AgentFactory(
            bus=self.bus,
            store=lambda: self.store,
            settings=config.get_settings,
            provider=self.provider,
            client=self.client,
            tools=default_registry(),
            session_id=self.session_id,
            register=self.keep,
        )

    def rows(self, sql: str, *params: object) -> list[tuple]:
        self.store.writer.flush()
        with self.store.db.connection() as con:
            return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def parts(db_path: Path) -> Iterator[Parts]:
    store = Store(db_path, flush_interval=0.05)
    engine = Engine()
    with SimServer(latency=0) as sim:
        p = Parts(engine, Bus(), store, sim)
        p.bus.subscribe(p.frames.append)
        # As the runtime does: traces reach the store through the bus.
        p.bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
        yield p
    engine.shutdown()
    store.close()


def test_a_new_agent_records_saves_its_session_and_is_handed_to_the_kernel(
    parts: Parts,
) -> None:
    factory = parts.factory()
    agent = factory.new_agent(tools=["read_file"], agent_id="scout", max_turns=3)
    assert parts.kept[agent.chat_id][0] is agent
    saver = parts.kept[agent.chat_id][1]
    assert agent.on_boundary is saver
    assert sorted(agent.tools) == ["read_file"]
    assert agent.model == parts.provider().model

    result = parts.engine.run(agent.run("say hello"))
    assert result.content.startswith("[simulator]")
    parts.store.writer.flush()
    traces = parts.rows(
        "SELECT session_id, agent_id, kind FROM tool_traces WHERE chat_id = ?", agent.chat_id
    )
    assert traces == [(parts.session_id, "scout", "model")]
    saved = load_snapshot(parts.store.db, agent.chat_id)
    assert saved is not None and saved[0] == saver.agent_session_id
    assert saved[1]["state"] == "awaiting_input"


def test_a_new_agent_refuses_a_tool_name_nobody_registered(parts: Parts) -> None:
    factory = parts.factory()
    with pytest.raises(UnknownToolError, match="no_such_tool"):
        factory.new_agent(tools=["no_such_tool"])
    assert parts.kept == {}  # nothing half-built is left live


def test_a_restored_chat_gets_its_history_back_under_the_same_ids(parts: Parts) -> None:
    first = parts.factory()
    agent = first.new_agent(tools=["read_file", "grep"])
    parts.engine.run(agent.run("remember the word heron"))
    parts.store.writer.flush()
    saved = load_snapshot(parts.store.db, agent.chat_id)
    assert saved is not None
    session_id, snap = saved
    snap["tools"] = [*snap["tools"], "a_tool_this_kernel_lacks"]

    again = parts.factory()  # as in a new kernel
    restored = again.restore(agent.chat_id, snap, agent_session_id=session_id)

    assert restored is not agent and restored.chat_id == agent.chat_id
    assert restored.messages == agent.messages
    assert restored.turn_number == agent.turn_number
    assert sorted(restored.tools) == ["grep", "read_file"]
    assert parts.kept[agent.chat_id][1].agent_session_id == session_id
    announced = [f for f in parts.frames if isinstance(f, SessionRestored)]
    assert [(f.chat_id, f.agent_session_id) for f in announced] == [(agent.chat_id, session_id)]


def test_api_new_agent_builds_with_the_factory_the_runtime_holds(parts: Parts) -> None:
    runtime = Runtime()
    try:
        runtime.agent_factory = parts.factory()
        agent = api.new_agent(runtime=runtime, tools=[], agent_id="via-api")
        assert parts.kept[agent.chat_id][0] is agent
        assert agent.recorder.session_id == parts.session_id
        assert agent.chat_id not in runtime.chats  # only the factory registers chats
    finally:
        runtime.shutdown()


SCRIPT = """
writer = agent("writer", prompt="You write one line.")
critic = agent("critic", prompt="You criticise.")
line = writer.run("a line about ducks")
result = {"line": line, "review": critic.run(line)}
"""


@pytest.mark.slow  # sandbox worker processes
def test_a_workflow_manager_built_from_parts_runs_a_workflow_without_a_runtime(
    parts: Parts,
) -> None:
    manager = WorkflowManager(
        engine=parts.engine,
        bus=parts.bus,
        store=lambda: parts.store,
        settings=config.get_settings,
        agents=parts.factory(),
        session_id=parts.session_id,
    )
    try:
        run_id = manager.run_script(SCRIPT)
        status = manager.wait(run_id, timeout=120)
    finally:
        parts.engine.run(manager.aclose())

    assert status.state == "completed", status
    assert isinstance(status.result, dict) and "ducks" in str(status.result["line"])
    agents = sorted(a.recorder.agent_id or "" for a, _ in parts.kept.values())
    assert agents == ["critic", "writer"]  # the run's agents came from the factory given
    traced = parts.rows(
        "SELECT DISTINCT agent_id, session_id FROM tool_traces WHERE workflow_run_id = ? "
        "AND kind IN ('model', 'tool') ORDER BY 1",
        run_id,
    )
    assert traced == [("critic", parts.session_id), ("writer", parts.session_id)]
    stored = parts.rows("SELECT state, session_id FROM workflow_runs WHERE id = ?", run_id)
    assert stored == [("completed", parts.session_id)]


def test_an_agent_a_tool_starts_through_the_factory_hangs_under_that_call(parts: Parts) -> None:
    from boonb.agent import tool
    from boonb.sim import Rule

    factory = parts.factory()
    children: list[Agent] = []

    @tool
    async def ask_helper(question: str) -> str:
        """Ask a helper agent."""
        child = factory.new_agent(tools=[])  # no parent given: the calling tool call's
        children.append(child)
        return (await child.run(question)).content

    parts.sim.add_rule(
        Rule("delegate", tool_calls=[{"name": "ask_helper", "arguments": {"question": "two?"}}])
    )
    parent = factory.new_agent(tools=[ask_helper], max_turns=3)
    parts.engine.run(parent.run("please delegate this"))
    (child,) = children
    (tool_call,) = parts.rows(
        "SELECT id FROM tool_traces WHERE chat_id = ? AND kind = 'tool'", parent.chat_id
    )
    child_first = parts.rows(
        "SELECT parent_id, root_id FROM tool_traces WHERE chat_id = ? ORDER BY started_at",
        child.chat_id,
    )[0]
    assert child_first == (tool_call[0], parent.chat_id)
    # A chat started outside any tool call is a tree of its own.
    assert parts.rows(
        "SELECT DISTINCT root_id FROM tool_traces WHERE chat_id = ?", parent.chat_id
    ) == [(parent.chat_id,)]


def test_a_restored_sub_chat_keeps_recording_under_the_call_that_started_it(
    parts: Parts,
) -> None:
    from boonb.agent import tool
    from boonb.agent.recorder import TraceParent
    from boonb.sim import Rule
    from boonb.store.agent_sessions import chat_parent

    factory = parts.factory()
    children: list[Agent] = []

    @tool
    async def ask_helper(question: str) -> str:
        """Ask a helper agent."""
        child = factory.new_agent(tools=[])
        children.append(child)
        return (await child.run(question)).content

    parts.sim.add_rule(
        Rule("delegate", tool_calls=[{"name": "ask_helper", "arguments": {"question": "two?"}}])
    )
    parent = factory.new_agent(tools=[ask_helper], max_turns=3)
    parts.engine.run(parent.run("please delegate this"))
    (child,) = children
    parts.store.writer.flush()
    hung = chat_parent(parts.store.db, child.chat_id)
    assert hung is not None and hung[1] == parent.chat_id
    assert chat_parent(parts.store.db, parent.chat_id) is None  # a tree of its own

    saved = load_snapshot(parts.store.db, child.chat_id)
    assert saved is not None
    restored = parts.factory().restore(  # as in a new kernel
        child.chat_id, saved[1], agent_session_id=saved[0], parent=TraceParent(*hung)
    )
    parts.engine.run(restored.run("and three?"))
    roots = parts.rows("SELECT DISTINCT root_id FROM tool_traces WHERE chat_id = ?", child.chat_id)
    assert roots == [(parent.chat_id,)]


def test_a_new_agent_takes_the_chat_id_its_caller_allocated(parts: Parts) -> None:
    chosen = uuid.uuid4()
    agent = parts.factory().new_agent(tools=[], chat_id=chosen)
    assert agent.chat_id == chosen and parts.kept[chosen][0] is agent
    parts.engine.run(agent.run("hello"))
    assert parts.rows("SELECT count(*) FROM chats WHERE id = ?", chosen) == [(1,)]
