"""The local executor runs a spec's agent in this kernel, exactly as building it by hand did.

Real parts: the simulator over HTTP, a DuckDB file, the engine thread. Each path gets a
kernel of its own (store, bus, simulator): the simulator's prefix cache is per server, so a
second run on the same one would report other cache tokens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from boonb import config
from boonb.agent import Agent, Tool, default_registry, tool
from boonb.agent.factory import AgentFactory
from boonb.agent.loop import AgentResult
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.recorder import TraceParent
from boonb.agent.sessions import SessionSaver
from boonb.agent.tools import UnknownToolError
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.executors import AgentRunSpec, ExecutorStatus
from boonb.executors.local import LocalExecutor
from boonb.frames import Frame
from boonb.providers import ChatClient
from boonb.sim import Rule, SimServer
from boonb.store import STORED_FRAME_TYPES, Store


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


ADD_RULE = Rule("add these", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
WORKFLOW_RUN = uuid.UUID(int=7)
PARENT = TraceParent(uuid.UUID(int=11), uuid.UUID(int=12))


@dataclass
class Kernel:
    """What a kernel gives its agent factory: a bus, a store, an engine and a simulator."""

    engine: Engine
    bus: Bus
    store: Store
    sim: SimServer
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    kept: dict[uuid.UUID, tuple[Agent, SessionSaver]] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)

    def factory(self, *extra: Tool) -> AgentFactory:
        registry = default_registry()
        for made in (add, *extra):
            registry.register(made)
        return AgentFactory(
            bus=self.bus,
            store=lambda: self.store,
            settings=config.get_settings,
            provider=lambda: choose_provider(config.get_settings(), sim_base_url=self.sim.base_url),
            client=_client,
            tools=registry,
            session_id=self.session_id,
            register=lambda agent, saver: self.kept.__setitem__(agent.chat_id, (agent, saver)),
        )

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        self.store.writer.flush()
        with self.store.db.connection() as con:
            return con.execute(sql, list(params)).fetchall()


def _client(choice: ProviderChoice) -> ChatClient:
    return ChatClient(choice.profile, api_key=choice.api_key, model=choice.model)


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[Callable[[], Kernel]]:
    """Makes kernels of their own (each its own database and simulator), closed after."""
    made: list[tuple[Kernel, SimServer]] = []

    def make() -> Kernel:
        n = len(made)
        store = Store(tmp_path / f"kernel{n}" / "boonb.duckdb", flush_interval=0.05)
        sim = SimServer(latency=0)
        sim.start()
        sim.add_rule(ADD_RULE)
        kernel = Kernel(Engine(), Bus(), store, sim)
        kernel.bus.subscribe(kernel.frames.append)
        kernel.bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
        made.append((kernel, sim))
        return kernel

    yield make
    for kernel, sim in made:
        kernel.engine.shutdown()
        kernel.store.close()
        sim.stop()


def _by_hand(kernel: Kernel, prompt: str) -> tuple[uuid.UUID, AgentResult]:
    """The old path of a workflow step: build the agent, then run it."""
    agent = kernel.factory().new_agent(
        model=None,
        tools=["add"],
        system_prompt="You add.",
        agent_id="adder",
        workflow_run_id=WORKFLOW_RUN,
        max_turns=4,
        parent=PARENT,
    )
    return agent.chat_id, kernel.engine.run(agent.run(prompt))


def _spec(prompt: str, **changes: Any) -> AgentRunSpec:
    values: dict[str, Any] = {
        "chat_id": uuid.uuid4(),
        "prompt": prompt,
        "system_prompt": "You add.",
        "tools": ("add",),
        "agent_id": "adder",
        "workflow_run_id": WORKFLOW_RUN,
        "max_turns": 4,
        "parent_trace_id": PARENT.trace_id,
        "parent_root_id": PARENT.root_id,
    }
    return AgentRunSpec(**{**values, **changes})


def _canonical(kernel: Kernel, chat_id: uuid.UUID) -> dict[str, Any]:
    """What the chat left in the store, without ids and times (which always differ)."""
    traces = kernel.rows(
        "SELECT id, parent_id, turn_number, kind, tool_name, agent_id, workflow_run_id, input, "
        "output, input_tokens, output_tokens, cache_tokens, tokens_used, outcome, error "
        "FROM tool_traces WHERE chat_id = ? ORDER BY turn_number, started_at",
        chat_id,
    )
    position = {row[0]: i for i, row in enumerate(traces)}
    return {
        "chat": kernel.rows(
            "SELECT session_id = ?, title, provider, model, agent_id, workflow_run_id "
            "FROM chats WHERE id = ?",
            kernel.session_id,
            chat_id,
        ),
        "traces": [
            (position.get(row[1], row[1]), *row[2:7], *map(_without_ids, row[7:9]), *row[9:])
            for row in traces
        ],
        "messages": kernel.rows(
            "SELECT m.role, m.turn_number, p.position, p.type, p.text, p.data "
            "FROM messages m LEFT JOIN message_parts p ON p.message_id = m.id "
            "WHERE m.chat_id = ? ORDER BY m.created_at, m.role, p.position",
            chat_id,
        ),
        "sessions": kernel.rows("SELECT state FROM agent_sessions WHERE chat_id = ?", chat_id),
    }


def _without_ids(text: str | None) -> Any:
    """A trace's JSON input or output with call ids (the simulator's, random) left out."""
    if text is None:
        return None

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("id", "tool_call_id")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(text))


def test_a_spec_run_locally_leaves_the_same_rows_as_an_agent_built_by_hand(
    kernels: Callable[[], Kernel],
) -> None:
    old, new = kernels(), kernels()
    old_chat, old_result = _by_hand(old, "add these please")

    spec = _spec("add these please")
    new_result = new.engine.run(LocalExecutor(new.factory()).run_agent(spec))

    assert new_result.content == old_result.content
    assert new_result.stats.tool_calls == old_result.stats.tool_calls == 1
    canonical = _canonical(new, spec.chat_id)
    assert canonical == _canonical(old, old_chat)
    # Not equal by being empty: the chat, its tool call and its saved session are there.
    assert [t[2] for t in canonical["traces"]] == ["model", "tool", "model"]
    assert canonical["chat"][0][0] is True and canonical["sessions"]
    # The run is the spec's chat, hung where the spec says, and handed to the kernel.
    assert spec.chat_id in new.kept
    assert canonical["traces"][0][0] == PARENT.trace_id


def test_a_spec_without_a_parent_is_a_tree_of_its_own(kernels: Callable[[], Kernel]) -> None:
    kernel = kernels()
    spec = _spec("hello", parent_trace_id=None, parent_root_id=None, tools=())
    kernel.engine.run(LocalExecutor(kernel.factory()).run_agent(spec))
    parents = kernel.rows("SELECT parent_id FROM tool_traces WHERE chat_id = ?", spec.chat_id)
    assert parents == [(None,)]


def test_a_spec_naming_an_unknown_tool_fails_before_any_agent_is_made(
    kernels: Callable[[], Kernel],
) -> None:
    kernel = kernels()
    executor = LocalExecutor(kernel.factory())
    with pytest.raises(UnknownToolError, match="no_such_tool"):
        kernel.engine.run(executor.run_agent(_spec("hello", tools=("no_such_tool",))))
    assert kernel.kept == {}
    assert kernel.rows("SELECT count(*) FROM tool_traces") == [(0,)]


def test_cancelling_a_local_run_closes_its_traces_as_cancelled(
    kernels: Callable[[], Kernel],
) -> None:
    kernel = kernels()
    started = asyncio.Event()

    @tool
    async def slow() -> str:
        """Takes a minute."""
        started.set()
        await asyncio.sleep(60)
        return "done"

    kernel.sim.add_rule(Rule("slow", tool_calls=[{"name": "slow", "arguments": {}}]))
    executor = LocalExecutor(kernel.factory(slow))
    spec = _spec("slow please", tools=("slow",))
    assert kernel.engine.run(_cancelled_once_started(executor, spec, started)) == "cancelled"
    rows = kernel.rows(
        "SELECT kind, outcome FROM tool_traces WHERE chat_id = ? ORDER BY started_at", spec.chat_id
    )
    assert rows == [("model", "success"), ("tool", "cancelled")]


async def _cancelled_once_started(
    executor: LocalExecutor, spec: AgentRunSpec, started: asyncio.Event
) -> str:
    """Run ``spec``, cancel it once ``started`` is set, and say how it ended."""
    run = asyncio.create_task(executor.run_agent(spec))
    await asyncio.wait_for(started.wait(), 10)
    run.cancel()
    try:
        await run
    except asyncio.CancelledError:
        return "cancelled"
    return "finished"


def test_the_local_executor_describes_itself_as_local(kernels: Callable[[], Kernel]) -> None:
    executor = LocalExecutor(kernels().factory())
    assert executor.name == "local"
    assert executor.describe() == ExecutorStatus(name="local")
