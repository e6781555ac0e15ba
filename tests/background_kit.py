"""What the background-task tests share: a Tasks service built from real parts.

The simulator over HTTP, a DuckDB file, the engine thread, and an agent factory, as a
kernel wires them, without a Runtime. ``gate`` is a tool that holds a subagent inside a
tool call until the test opens it, so a test sees a task running without timing anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from boonb import config
from boonb.agent import Agent, default_registry
from boonb.agent.factory import AgentFactory
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.sessions import SessionSaver
from boonb.agent.tools import ToolContext
from boonb.agent.tools.definition import tool
from boonb.background import Tasks, subagent_tools
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.frames import Frame, TaskUpdate
from boonb.providers import ChatClient
from boonb.sim import SimServer
from boonb.store import STORED_FRAME_TYPES, Store

WAIT_S = 60.0


@dataclass
class Kit:
    engine: Engine
    bus: Bus
    store: Store
    sim: SimServer
    tasks: Tasks
    gates: dict[str, threading.Event]
    frames: list[Frame] = field(default_factory=list)
    agents: dict[uuid.UUID, Agent] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def heard(self, frame: Frame) -> None:
        with self._changed:
            self.frames.append(frame)
            self._changed.notify_all()

    def until(self, condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Wait for a frame after which ``condition()`` holds (returns its value).

        The condition is checked without holding the frames' lock: it may ask the service,
        which may wait for the engine, which may be publishing a frame.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = len(self.frames)
            if value := condition():
                return value
            with self._changed:
                while len(self.frames) == seen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise AssertionError(f"waited {timeout}s for {what}")
                    self._changed.wait(left)

    def updates(self, task_id: uuid.UUID) -> list[TaskUpdate]:
        with self._changed:
            return [f for f in self.frames if isinstance(f, TaskUpdate) and f.task_id == task_id]

    def latest(self, task_id: uuid.UUID) -> TaskUpdate | None:
        found = self.updates(task_id)
        return found[-1] if found else None

    def until_state(self, task_id: uuid.UUID, *states: str) -> TaskUpdate:
        return self.until(
            lambda: (u := self.latest(task_id)) is not None and u.state in states and u,
            f"task {task_id} to be {'/'.join(states)}",
        )

    def gate(self, name: str) -> threading.Event:
        return self.gates.setdefault(name, threading.Event())

    def rows(self, sql: str, *params: object) -> list[tuple]:
        self.store.writer.flush()
        with self.store.db.connection() as con:
            return con.execute(sql, list(params)).fetchall()

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """A subagent tool called as the notebook would (no calling agent)."""
        found = self.tasks.tools.get(name)
        context = ToolContext(project_root=config.get_settings().project)
        return self.engine.run(found.invoke(arguments, context))


def make_kit(*, latency: float = 0.0, flush_interval: float = 0.05) -> Iterator[Kit]:
    store = Store(config.get_settings().database, flush_interval=flush_interval)
    engine = Engine()
    bus = Bus()
    bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
    session_id = uuid.uuid4()
    gates: dict[str, threading.Event] = {}
    registry = default_registry()
    holder: dict[str, Tasks] = {}

    @tool
    def gate(name: str) -> str:
        """Wait until the test opens the gate of this name.

        Args:
            name: The gate.

        """
        if not gates.setdefault(name, threading.Event()).wait(WAIT_S):
            raise TimeoutError(f"gate {name} was never opened")
        return f"gate {name} open"

    registry.register(gate)
    for made in subagent_tools(lambda: holder["tasks"]):
        registry.register(made)
    with SimServer(latency=latency) as sim:

        def provider() -> ProviderChoice:
            return choose_provider(config.get_settings(), sim_base_url=sim.base_url)

        def client(choice: ProviderChoice) -> ChatClient:
            return ChatClient(
                choice.profile, api_key=choice.api_key, model=choice.model, backoff=0.01
            )

        kit_ref: list[Kit] = []

        def keep(agent: Agent, saver: SessionSaver) -> None:
            kit_ref[0].agents[agent.chat_id] = agent
            agent.notes = lambda a: holder["tasks"].notice_for(a.chat_id)

        factory = AgentFactory(
            bus=bus,
            store=lambda: store,
            settings=config.get_settings,
            provider=provider,
            client=client,
            tools=registry,
            session_id=session_id,
            register=keep,
        )
        tasks = Tasks(
            engine=engine,
            bus=bus,
            store=lambda: store,
            settings=config.get_settings,
            agents=factory,
            tools=registry,
            session_id=session_id,
        )
        holder["tasks"] = tasks
        kit = Kit(engine, bus, store, sim, tasks, gates)
        kit_ref.append(kit)
        bus.subscribe(kit.heard)
        try:
            yield kit
        finally:
            for event in gates.values():
                event.set()
            tasks.close()
            engine.shutdown()
    store.close()
