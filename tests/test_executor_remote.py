"""A remote agent without Dask: ``AgentHost`` on one side, ``Replay`` on the other.

Each test builds two "kernels" from real parts (an engine, a bus, a DuckDB file, the
simulator over HTTP, an ``AgentFactory``) and runs the same spec on both: through the
``LocalExecutor`` on one, and through an ``AgentHost`` whose batches go through msgpack
(as ``Worker.log_event`` sends them) into the other kernel's ``Replay`` on the other.
Arguments and replies go through pickle, as an actor's do. The stored rows and the
frames each kernel's bus carried must be the same, ids and times aside.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import io
import json
import logging
import os
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cloudpickle
import msgpack
import pytest

from boonb import config
from boonb.agent import default_registry, tool
from boonb.agent.factory import AgentFactory
from boonb.agent.loop import Agent, AgentResult
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.sessions import SessionSaver
from boonb.agent.tools import ToolError, ToolRegistry
from boonb.attachments import AttachmentStore
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.errors import AgentError, ExecutorError, WorkerLost
from boonb.executors import wire
from boonb.executors.host import AgentHost, _Clients, kernel_only_message
from boonb.executors.local import LocalExecutor
from boonb.executors.replay import Replay
from boonb.executors.spec import AgentRunSpec, ProviderWire
from boonb.frames import Frame, SessionSaved, frame_adapter
from boonb.providers import ChatClient
from boonb.providers.profiles import OPENAI, Prices
from boonb.sim import Fault, Rule, SimServer
from boonb.store import STORED_FRAME_TYPES, Store

TOPIC = "boonb-test"
CANARY = "sk-CANARY-0123456789-never-anywhere"
TIME_KEYS = frozenset(
    {"started_at", "finished_at", "latency_ms", "created_at", "last_update", "wall_time_s"}
)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@dataclass
class Kernel:
    """What a kernel gives its agents: bus, store, simulator, factory; the frames it saw."""

    engine: Engine
    bus: Bus
    store: Store
    sim: SimServer
    api_key: str | None = None
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    frames: list[Frame] = field(default_factory=list)
    tools: ToolRegistry = field(default_factory=default_registry)

    def __post_init__(self) -> None:
        self.tools.register(add)
        self.bus.subscribe(self.frames.append)
        self.bus.subscribe(self.store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
        self.factory = AgentFactory(
            bus=self.bus,
            store=lambda: self.store,
            settings=config.get_settings,
            provider=self.provider,
            client=lambda c: ChatClient(c.profile, api_key=c.api_key, model=c.model),
            tools=self.tools,
            session_id=self.session_id,
            register=_keep_nothing,
        )

    def provider(self) -> ProviderChoice:
        choice = choose_provider(config.get_settings(), sim_base_url=self.sim.base_url)
        return dataclasses.replace(choice, api_key=self.api_key)

    def dump(self) -> dict[str, list[Any]]:
        """Every row the runs left, ids by first appearance and times left out."""
        self.store.writer.flush()
        ids = _Ids(self.sim.base_url)
        queries = {
            "chats": "SELECT * FROM chats ORDER BY created_at",
            "tool_traces": "SELECT * FROM tool_traces ORDER BY started_at, kind",
            "cache_stats": "SELECT c.* FROM cache_stats c JOIN tool_traces t ON t.id = c.trace_id "
            "ORDER BY t.started_at, c.segment",
            "messages": "SELECT * FROM messages ORDER BY created_at, rowid",
            "message_parts": "SELECT p.* FROM message_parts p JOIN messages m "
            "ON m.id = p.message_id ORDER BY m.created_at, m.rowid, p.position",
            "agent_sessions": "SELECT * FROM agent_sessions ORDER BY chat_id",
        }
        dumped: dict[str, list[Any]] = {}
        with self.store.db.connection() as con:
            for table, sql in queries.items():
                cursor = con.execute(sql)
                names = [d[0] for d in cursor.description]
                dumped[table] = [
                    ids.canon(dict(zip(names, row, strict=True))) for row in cursor.fetchall()
                ]
        return dumped

    def shown(self) -> tuple[list[Any], list[tuple[str, int]]]:
        """The frames the bus carried, ids by first appearance, times left out; and apart,
        the session saves (announced once on disk, so their place among the rest varies)."""
        ids = _Ids(self.sim.base_url)
        rest = [
            ids.canon(frame_adapter.dump_python(f, mode="json"))
            for f in self.frames
            if not isinstance(f, SessionSaved)
        ]
        saves: list[tuple[str, int]] = [
            (f.state, f.turn_number) for f in self.frames if isinstance(f, SessionSaved)
        ]
        return rest, saves

    def sessions(self) -> list[tuple[Any, ...]]:
        self.store.writer.flush()
        with self.store.db.connection() as con:
            return con.execute(
                "SELECT state, session_id, kernel_pid, snapshot FROM agent_sessions"
            ).fetchall()


def _keep_nothing(agent: Agent, saver: SessionSaver) -> None:
    pass  # remote chats are not live in the kernel; local ones need not be for these tests


class _Ids:
    """Names ids by order of first appearance, so two runs compare with ids aside.

    The simulator's address is named too: each kernel has its own simulator.
    """

    def __init__(self, sim_url: str) -> None:
        self.names: dict[str, str] = {sim_url: "<sim>"}

    def name(self, value: str) -> str:
        return self.names.setdefault(value, f"id{len(self.names)}")

    def canon(self, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return self.name(str(value))
        if isinstance(value, datetime):
            return "<time>"
        if isinstance(value, dict):
            return {k: self.canon(v) for k, v in value.items() if k not in TIME_KEYS}
        if isinstance(value, list | tuple):
            return [self.canon(v) for v in value]
        if isinstance(value, str):
            if value in self.names:
                return self.names[value]
            try:
                return self.name(str(uuid.UUID(value)))
            except ValueError:
                pass
            if value[:1] in "{[":
                try:
                    return self.canon(json.loads(value))
                except ValueError:
                    return value
        return value


def over_the_wire(message: dict[str, Any]) -> Any:
    return msgpack.unpackb(msgpack.packb(message))


def pickled(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))


class Remote:
    """A kernel running its agents on an ``AgentHost``, as the Dask executor does."""

    def __init__(
        self,
        kernel: Kernel,
        attachments: Path,
        *,
        hold: bool = False,
        lease_s: float = 30,
        topic: str = TOPIC,
        host: AgentHost | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.kernel = kernel
        self.replay = Replay(kernel.factory, grace_s=grace_s)
        self.hold = hold
        """Keep the batches instead of feeding them (to deliver them late, or not at all)."""
        self.batches: list[Any] = []
        self.topic = topic
        self.host = host or AgentHost(emit=self.emit, attachments_dir=attachments, lease_s=lease_s)
        """A host of its own, or one shared with other kernels (each on its own topic)."""

    def emit(self, topic: str, batch: dict[str, Any]) -> None:
        assert topic == self.topic
        received = over_the_wire(batch)
        self.batches.append(received)
        if not self.hold:
            self.replay.feed(received)

    async def send(self, spec: AgentRunSpec, *, send_tools: bool = True) -> dict[str, Any]:
        """Start the run on the host; its reply, as the kernel receives it.

        The kernel's tools go first, unless ``send_tools`` is False (the host has them:
        the Dask executor sends them once per worker).
        """
        self.replay.begin(spec)
        if send_tools:
            tools = cloudpickle.loads(cloudpickle.dumps(list(self.kernel.tools)))
            await self.host.register_tools(tools, topic=self.topic)
        provider = wire.provider_wire(
            self.kernel.provider(),
            tool_output_max_chars=config.get_settings().tool_output_max_chars,
        )
        project = config.get_settings().project
        images = wire.image_blobs(spec.images, AttachmentStore(project))
        reply = await self.host.run(
            pickled(spec),
            pickled(provider),
            pickled(images),
            self.topic,
            project_root=str(config.get_settings().project),
        )
        return pickled(reply)

    async def run(self, spec: AgentRunSpec, *, send_tools: bool = True) -> AgentResult:
        reply = await self.send(spec, send_tools=send_tools)
        try:
            await self.replay.finished(str(spec.chat_id), reply["last_seq"])
            return wire.result_of(reply)
        finally:
            self.replay.forget(str(spec.chat_id))


@pytest.fixture
def engine() -> Iterator[Engine]:
    made = Engine()
    yield made
    made.shutdown()


@pytest.fixture
def kernels(tmp_path: Path, engine: Engine) -> Iterator[tuple[Kernel, Kernel]]:
    """A local kernel and a remote one, each with its own database and simulator.

    Each has its own simulator: the simulator's prefix cache would give a second run
    cache hits the first did not have.
    """
    with SimServer(latency=0.02) as sim_a, SimServer(latency=0.02) as sim_b:
        made = []
        for name, sim in (("local", sim_a), ("remote", sim_b)):
            store = Store(tmp_path / name / "boonb.duckdb", flush_interval=0.05)
            made.append(Kernel(engine, Bus(), store, sim))
        yield made[0], made[1]
        for kernel in made:
            kernel.store.close()


def two_turn_spec(**fields: Any) -> AgentRunSpec:
    values: dict[str, Any] = {
        "chat_id": uuid.uuid4(),
        "prompt": "please add 2 and 3",
        "tools": ("add", "list_files"),
        "agent_id": "adder",
        "max_turns": 4,
        "budget": 100_000,
        "parent_trace_id": uuid.uuid4(),
        "parent_root_id": uuid.uuid4(),
    }
    values.update(fields)
    return AgentRunSpec(**values)


ADD_RULE = Rule("please add", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])


def test_a_remote_run_leaves_the_rows_frames_and_result_of_a_local_run(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    local, remote = kernels
    for kernel in kernels:
        kernel.sim.add_rule(ADD_RULE)
    spec = two_turn_spec()

    here = local.engine.run(LocalExecutor(local.factory).run_agent(spec))
    there = remote.engine.run(Remote(remote, tmp_path / "worker").run(spec))

    assert there.stats.turns == 2 and there.stats.tool_calls == 1  # the tool was called
    assert (there.content, there.stop_reason, there.stats) == (
        here.content,
        here.stop_reason,
        here.stats,
    )
    rows_here, rows_there = local.dump(), remote.dump()
    assert [r["kind"] for r in rows_there["tool_traces"]] == ["model", "tool", "model"]
    assert rows_there["tool_traces"][1]["output"] == "5"  # JSON text
    for table in rows_here:
        assert rows_there[table] == rows_here[table], table
    assert remote.shown() == local.shown()
    # The rows are this kernel's: its session, its process; none is the worker's stand-in.
    ((state, session_id, pid, snap),) = remote.sessions()
    assert (state, session_id, pid) == ("awaiting_input", remote.session_id, os.getpid())
    assert json.loads(snap)["session_id"] == str(remote.session_id)
    with remote.store.db.connection() as con:
        sessions = con.execute("SELECT DISTINCT session_id FROM tool_traces").fetchall()
    assert sessions == [(remote.session_id,)]


def test_a_remote_cancel_closes_the_run_as_a_local_cancel_does(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    local, remote = kernels
    for kernel in kernels:
        kernel.sim.add_rule(Rule("think slowly", latency=30))
    spec = two_turn_spec(prompt="think slowly about it")

    running = local.engine.submit(LocalExecutor(local.factory).run_agent(spec))
    wait_until(lambda: local.sim.requests)  # the model call is under way
    running.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        running.result(10)

    there = Remote(remote, tmp_path / "worker")
    reply = remote.engine.submit(there.send(spec))
    wait_until(lambda: remote.sim.requests)
    assert remote.engine.run(there.host.runs()) == [str(spec.chat_id)]
    assert remote.engine.run(there.host.cancel(str(spec.chat_id))) is True
    answer = reply.result(10)
    remote.engine.run(there.replay.finished(str(spec.chat_id), answer["last_seq"]))
    with pytest.raises(asyncio.CancelledError):
        wire.result_of(answer)

    assert remote.engine.run(there.host.runs()) == []
    rows_here, rows_there = local.dump(), remote.dump()
    assert [(r["kind"], r["outcome"]) for r in rows_there["tool_traces"]] == [
        ("model", "cancelled")
    ]
    assert [r["state"] for r in rows_there["agent_sessions"]] == ["cancelled"]
    for table in rows_here:
        assert rows_there[table] == rows_here[table], table
    assert remote.shown() == local.shown()


def test_a_kernel_only_tool_is_offered_with_its_local_schema_but_refused_on_the_worker(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    local, remote = kernels
    remote.sim.add_rule(
        Rule("my variables", tool_calls=[{"name": "notebook_vars", "arguments": {}}])
    )
    spec = two_turn_spec(prompt="list my variables", tools=("notebook_vars", "add"))

    result = remote.engine.run(Remote(remote, tmp_path / "worker").run(spec))

    traces = remote.dump()["tool_traces"]
    assert [(t["kind"], t["tool_name"], t["outcome"]) for t in traces[:2]] == [
        ("model", traces[0]["tool_name"], "success"),
        ("tool", "notebook_vars", "error"),
    ]
    assert traces[1]["error"] == kernel_only_message("notebook_vars")
    assert "%boonb config executor=local" in traces[1]["error"]
    # The model saw the tool as a local agent would, and read why it failed.
    local_schemas = [t.openai_schema() for t in local.tools.resolve(spec.tools or ())]
    assert traces[0]["input"]["tool_schemas"] == local_schemas
    assert result.stats.tool_errors == 1
    tool_messages = [m for m in remote.dump()["message_parts"] if m["type"] == "tool_result"]
    assert tool_messages[0]["text"] == f"Error: {kernel_only_message('notebook_vars')}"


def test_the_reply_can_arrive_before_its_items_and_the_kernel_waits_for_them(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    remote.sim.add_rule(ADD_RULE)
    spec = two_turn_spec()
    run_id = str(spec.chat_id)
    there = Remote(remote, tmp_path / "worker", hold=True)

    async def late_items() -> tuple[bool, int, AgentResult]:
        reply = await there.send(spec)
        waiting = asyncio.ensure_future(there.replay.finished(run_id, reply["last_seq"]))
        for batch in reversed(there.batches[1:]):  # all but the first, backwards
            there.replay.feed(batch)
        await asyncio.sleep(0)
        early = waiting.done()
        frames_before_first = len(remote.frames)
        there.replay.feed(there.batches[0])
        await waiting
        return early, frames_before_first, wire.result_of(reply)

    early, frames_before_first, result = remote.engine.run(late_items())

    assert len(there.batches) > 2  # the run's items came in several batches
    assert not early and frames_before_first == 0  # nothing applied out of order
    assert result.stats.turns == 2
    sent = [
        wire.frame_of(item.data).type
        for batch in there.batches
        for item in wire.items_of(batch)
        if item.kind == "frame"
    ]
    shown = [f.type for f in remote.frames if not isinstance(f, SessionSaved)]
    assert shown == sent  # in the run's order
    assert [m["role"] for m in remote.dump()["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_items_that_never_come_fail_the_wait_with_an_executor_error(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    spec = two_turn_spec(prompt="hello", tools=())
    there = Remote(remote, tmp_path / "worker", hold=True)

    async def lost_items() -> None:
        reply = await there.send(spec)
        there.replay.feed(there.batches[0])
        await there.replay.finished(str(spec.chat_id), reply["last_seq"], timeout=0.05)

    with pytest.raises(ExecutorError, match="did not all arrive.*what arrived is kept"):
        remote.engine.run(lost_items())


def test_a_run_lost_with_its_worker_is_saved_as_failed(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    remote.sim.add_rule(ADD_RULE)
    spec = two_turn_spec()
    there = Remote(remote, tmp_path / "worker", hold=True)

    async def dies_after_turn_one() -> None:
        await there.send(spec)
        there.replay.feed(there.batches[0])  # the run's start, then the worker died
        there.replay.lost(str(spec.chat_id), "the worker was killed")
        for batch in there.batches[1:]:  # what it had sent before dying comes in late
            there.replay.feed(batch)

    remote.engine.run(dies_after_turn_one())

    ((state, session_id, _, snap),) = remote.sessions()
    assert (state, session_id) == ("failed", remote.session_id)
    assert json.loads(snap)["state"] == "failed"


def test_a_batch_of_another_version_or_of_an_unknown_run_is_dropped_with_a_log_line(
    kernels: tuple[Kernel, Kernel], caplog: pytest.LogCaptureFixture
) -> None:
    _, remote = kernels
    replay = Replay(remote.factory)
    spec = two_turn_spec()
    replay.begin(spec)
    turn = wire.json_data({"provider": "sim", "model": "m", "title": "t"})
    item = wire.Item(str(spec.chat_id), 1, "chat", turn)
    stranger = wire.Item(str(uuid.uuid4()), 1, "chat", turn)

    with caplog.at_level(logging.INFO, logger="boonb.executors.replay"):
        remote.engine.run(_feed(replay, {**wire.batch([item]), "v": 2}))
        remote.engine.run(_feed(replay, wire.batch([stranger])))

    assert "wire version 2" in caplog.text
    assert f"dropped 1 items of agent run {stranger.run_id}" in caplog.text
    assert remote.dump()["chats"] == []
    remote.engine.run(_feed(replay, wire.batch([item])))  # the right version is applied
    assert len(remote.dump()["chats"]) == 1


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


async def _feed(replay: Replay, batch: dict[str, Any]) -> None:
    replay.feed(batch)  # on the engine thread, as the Dask executor's topic handler


def test_a_frame_of_another_chat_or_a_kernel_frame_from_a_worker_is_not_published(
    kernels: tuple[Kernel, Kernel],
) -> None:
    from boonb.frames import TurnStart

    _, remote = kernels
    replay = Replay(remote.factory)
    spec = two_turn_spec()
    replay.begin(spec)
    now = datetime.now().astimezone()
    other_chat = TurnStart(chat_id=uuid.uuid4(), turn_number=1, started_at=now)
    # A save is the kernel's to announce, once on disk: a worker's would be a lie.
    forged = SessionSaved(
        agent_session_id=uuid.uuid4(),
        chat_id=spec.chat_id,
        state="completed",
        turn_number=1,
        last_update=now,
    )
    own = TurnStart(chat_id=spec.chat_id, turn_number=1, started_at=now)
    frames: list[Frame] = [other_chat, forged, own]
    items = [
        wire.Item(str(spec.chat_id), seq, "frame", wire.frame_data(frame))
        for seq, frame in enumerate(frames, start=1)
    ]
    remote.engine.run(_feed(replay, wire.batch(items)))
    assert remote.frames == [own]


def test_an_unknown_tool_name_fails_the_run_as_a_local_run_does(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    spec = two_turn_spec(tools=("no_such_tool",))
    with pytest.raises(ToolError, match="unknown tool 'no_such_tool'"):
        remote.engine.run(Remote(remote, tmp_path / "worker").run(spec))


def test_no_api_key_reaches_an_item_a_row_or_a_log_line(
    kernels: tuple[Kernel, Kernel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, remote = kernels
    remote.api_key = CANARY
    remote.sim.add_rule(ADD_RULE)
    there = Remote(remote, tmp_path / "worker")
    with caplog.at_level(logging.DEBUG):
        result = remote.engine.run(there.run(two_turn_spec()))

    assert result.stats.turns == 2
    client = next(iter(there.host._clients.made.values()))
    assert client._api_key == CANARY  # the worker did get the key...
    assert CANARY not in repr(there.batches)  # ...and sent none of it back
    assert CANARY not in json.dumps(remote.dump(), default=str)
    assert CANARY not in caplog.text


def png(color: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()


def test_a_remote_run_sends_the_prompts_images_and_records_only_their_references(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    local, remote = kernels
    data = png("teal")
    project = config.get_settings().project
    ref = AttachmentStore(project, upload_dir=tmp_path / "up").add_bytes(data, name="plot.png")
    spec = two_turn_spec(prompt="what is in this plot?", tools=(), images=(ref,))

    local.engine.run(LocalExecutor(local.factory).run_agent(spec))
    remote.engine.run(Remote(remote, tmp_path / "worker").run(spec))

    (request,) = remote.sim.requests
    sent = request["messages"][1]["content"][1]["image_url"]["url"]
    assert sent == f"data:image/png;base64,{base64.b64encode(data).decode()}"
    assert (tmp_path / "worker" / ".boonb" / "attachments" / ref.file_name).read_bytes() == data
    rows_here, rows_there = local.dump(), remote.dump()
    assert [p["type"] for p in rows_there["message_parts"]][:2] == ["text", "image"]
    for table in rows_here:
        assert rows_there[table] == rows_here[table], table
    assert remote.shown() == local.shown()


def test_a_run_whose_kernel_stopped_pinging_ends_as_worker_lost_not_as_a_cancel(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    remote.sim.add_rule(Rule("think slowly", latency=30))
    spec = two_turn_spec(prompt="think slowly about it")
    there = Remote(remote, tmp_path / "worker", lease_s=0.2)

    running = remote.engine.submit(there.send(spec))
    # Pinged until the model call is under way, then never again.
    wait_until(lambda: remote.engine.run(there.host.ping(TOPIC)) or remote.sim.requests)
    reply = running.result(10)

    assert reply["outcome"] == "expired"
    remote.engine.run(there.replay.finished(str(spec.chat_id), reply["last_seq"]))
    # The kernel asked for no cancel: it hears that the worker lost it, and why.
    with pytest.raises(WorkerLost, match="had not heard from this kernel for 0 s.*network"):
        wire.result_of(reply)
    traces = remote.dump()["tool_traces"]
    assert [(t["kind"], t["outcome"]) for t in traces] == [("model", "cancelled")]
    assert remote.engine.run(there.host.runs()) == []


def test_a_host_says_its_versions_and_refuses_what_is_not_a_tool(tmp_path: Path) -> None:
    from importlib.metadata import version

    host = AgentHost(emit=lambda topic, batch: None, attachments_dir=tmp_path)

    async def talk() -> dict[str, Any]:
        with pytest.raises(TypeError, match="takes Tool objects"):
            await host.register_tools([add.function], topic=TOPIC)  # type: ignore[list-item]
        return await host.hello()

    assert asyncio.run(talk()) == {"boonb": version("boonb"), "wire": wire.WIRE_VERSION}


@tool(name="lookup")
def lookup_a() -> str:
    """Look the answer up."""
    return "alpha"


@tool(name="lookup")
def lookup_b() -> str:
    """Look the answer up."""
    return "beta"


@tool
def only_b() -> str:
    """A tool only kernel B has."""
    return "b"


def test_two_kernels_on_one_host_each_run_their_own_tools(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    a, b = kernels
    a.tools.register(lookup_a)
    b.tools.register(lookup_b)
    b.tools.register(only_b)
    remotes: dict[str, Remote] = {}
    host = AgentHost(
        emit=lambda topic, batch: remotes[topic].emit(topic, batch), attachments_dir=tmp_path
    )
    for name, kernel in (("a", a), ("b", b)):
        kernel.sim.add_rule(Rule("look it up", tool_calls=[{"name": "lookup", "arguments": {}}]))
        remotes[f"boonb-{name}"] = Remote(kernel, tmp_path, topic=f"boonb-{name}", host=host)
    there_a, there_b = remotes.values()

    async def both() -> None:  # A sends its tools first, then B: B's lookup must not win
        await there_a.run(two_turn_spec(prompt="hello", tools=()))
        await there_b.run(two_turn_spec(prompt="look it up", tools=("lookup",)))
        await there_a.run(two_turn_spec(prompt="look it up", tools=("lookup",)), send_tools=False)
        await there_a.run(two_turn_spec(prompt="look it up", tools=None), send_tools=False)
        await there_b.run(two_turn_spec(prompt="look it up", tools=None), send_tools=False)

    a.engine.run(both())

    for kernel, output in ((a, '"alpha"'), (b, '"beta"')):
        traces = kernel.dump()["tool_traces"]
        assert [t["output"] for t in traces if t["kind"] == "tool"] == [output, output]
        last_call = [t for t in traces if t["kind"] == "model"][-2]
        offered = [s["function"]["name"] for s in last_call["input"]["tool_schemas"]]
        assert offered == [t.name for t in kernel.tools]  # tools=None: this kernel's own


def test_a_worker_never_sends_its_own_key_when_the_kernel_sent_none(
    kernels: tuple[Kernel, Kernel], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, remote = kernels
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # the worker's environment
    gateway = OPENAI.with_overrides(base_url=remote.sim.base_url)
    provider = ProviderWire(
        name="openai", profile=gateway, model="gpt-4o", api_key=None, tool_output_max_chars=100
    )

    client = _Clients().get(provider)

    assert client._api_key != CANARY
    assert "authorization" not in client._http.headers  # no key goes to the kernel's URL


def test_clients_are_not_shared_by_kernels_whose_profiles_differ_only_in_prices() -> None:
    def wire_of(profile: Any) -> ProviderWire:
        return ProviderWire(
            name="openai", profile=profile, model="gpt-4o", tool_output_max_chars=100
        )

    clients = _Clients()
    free = Prices(input_per_mtok=0, cache_hit_input_per_mtok=0, output_per_mtok=0)
    cheap = OPENAI.with_overrides(prices={"gpt-4o": free})
    first, second = clients.get(wire_of(OPENAI)), clients.get(wire_of(cheap))

    assert first is not second
    assert second.profile.spec("gpt-4o").prices == cheap.spec("gpt-4o").prices
    assert clients.get(wire_of(cheap)) is second  # the same profile shares its client


def _message(run_id: str, seq: int, content: Any) -> wire.Item:
    sent = {"message": {"role": "user", "content": content}, "turn_number": 1}
    return wire.Item(run_id, seq, "message", wire.json_data(sent))


def test_an_item_that_fails_to_apply_is_logged_and_its_run_and_batch_go_on(
    kernels: tuple[Kernel, Kernel], caplog: pytest.LogCaptureFixture
) -> None:
    _, remote = kernels
    replay = Replay(remote.factory)
    spec, other = two_turn_spec(), two_turn_spec()
    replay.begin(spec)
    replay.begin(other)
    run_id = str(spec.chat_id)
    chat = wire.json_data({"provider": "sim", "model": "m", "title": "t"})
    items = [
        wire.Item(run_id, 1, "chat", chat),
        _message(run_id, 2, ["a string where a part belongs"]),  # applying it raises
        _message(run_id, 3, "hello"),
        wire.Item(run_id, 4, "end", wire.json_data({"outcome": "done"})),
        wire.Item(str(other.chat_id), 1, "chat", chat),  # another run, later in the batch
    ]

    async def feed_and_wait() -> None:
        replay.feed(wire.batch(items))
        await replay.finished(run_id, 4, timeout=5)

    with caplog.at_level(logging.WARNING, logger="boonb.executors.replay"):
        remote.engine.run(feed_and_wait())

    assert "dropped item 2 (message)" in caplog.text
    rows = remote.dump()
    assert len(rows["chats"]) == 2  # the other run's item, after the bad one, too
    assert [p["text"] for p in rows["message_parts"]] == ["hello"]  # the item after it


def test_items_after_a_missing_batch_are_applied_when_the_wait_gives_up(
    kernels: tuple[Kernel, Kernel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, remote = kernels
    remote.sim.add_rule(ADD_RULE)
    spec = two_turn_spec()
    there = Remote(remote, tmp_path / "worker", hold=True)

    async def batch_two_is_lost() -> None:
        reply = await there.send(spec)
        assert len(there.batches) > 2
        for batch in there.batches[:1] + there.batches[2:]:
            there.replay.feed(batch)
        with pytest.raises(ExecutorError, match="what arrived is kept"):
            await there.replay.finished(str(spec.chat_id), reply["last_seq"], timeout=0.05)

    with caplog.at_level(logging.WARNING, logger="boonb.executors.replay"):
        remote.engine.run(batch_two_is_lost())

    assert "never arrived" in caplog.text
    ((state, _, _, _),) = remote.sessions()
    assert state == "awaiting_input"  # the run's final snapshot, sent after the gap
    assert [m["role"] for m in remote.dump()["messages"]][-1] == "assistant"


@pytest.mark.parametrize("missing", [None, 1], ids=["all-come", "one-never-comes"])
def test_late_items_of_a_lost_run_are_stored_after_the_executor_forgets_it(
    kernels: tuple[Kernel, Kernel], tmp_path: Path, missing: int | None
) -> None:
    _, remote = kernels
    remote.sim.add_rule(ADD_RULE)
    spec = two_turn_spec()
    run_id = str(spec.chat_id)
    there = Remote(remote, tmp_path / "worker", hold=True, grace_s=0.05)

    async def dies_then_items_come() -> None:
        await there.send(spec)
        assert len(there.batches) > 2
        there.replay.feed(there.batches[0])
        there.replay.lost(run_id, "the worker was killed")
        there.replay.forget(run_id)  # as the executor does, at once
        for index, batch in enumerate(there.batches[1:], start=1):  # after the error
            if index != missing:
                there.replay.feed(batch)

    remote.engine.run(dies_then_items_come())
    # Followed for the grace period, then let go (what was held behind a gap applied).
    wait_until(lambda: remote.engine.run(_following(there.replay)) == [])

    roles = [m["role"] for m in remote.dump()["messages"]]
    assert roles[-1] == "assistant"  # the last turn's answer, sent after the kill
    if missing is None:
        assert roles == ["user", "assistant", "tool", "assistant"]
    ((state, _, _, snap),) = remote.sessions()
    assert state == "failed" and json.loads(snap)["state"] == "failed"


async def _following(replay: Replay) -> list[str]:
    return replay.following()


def test_forgetting_a_run_ends_its_waiters_with_an_executor_error_not_a_cancel(
    kernels: tuple[Kernel, Kernel],
) -> None:
    _, remote = kernels
    replay = Replay(remote.factory)
    spec = two_turn_spec()
    replay.begin(spec)

    async def wait_then_forget() -> None:
        waiting = asyncio.ensure_future(replay.finished(str(spec.chat_id), 3))
        await asyncio.sleep(0)  # it waits now
        replay.forget(str(spec.chat_id))
        with pytest.raises(ExecutorError, match="no longer followed"):
            await waiting

    remote.engine.run(wait_then_forget())


def test_a_run_cancelled_before_it_began_still_sends_its_end(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    spec = two_turn_spec(prompt="hello", tools=())
    there = Remote(remote, tmp_path / "worker")

    async def cancel_at_once() -> dict[str, Any]:
        sending = asyncio.ensure_future(there.send(spec))
        await asyncio.sleep(0)  # the run is registered, its agent not started
        assert await there.host.cancel(str(spec.chat_id)) is True
        reply = await sending
        await there.replay.finished(str(spec.chat_id), reply["last_seq"])
        return reply

    reply = remote.engine.run(cancel_at_once())

    assert (reply["outcome"], reply["last_seq"]) == ("cancelled", 1)
    ((item,),) = [wire.items_of(b) for b in there.batches]
    assert item.kind == "end"
    assert remote.sim.requests == []
    with pytest.raises(asyncio.CancelledError):
        wire.result_of(reply)


def test_a_second_run_with_the_id_of_a_running_one_is_refused(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    remote.sim.add_rule(Rule("think slowly", latency=30))
    spec = two_turn_spec(prompt="think slowly about it")
    there = Remote(remote, tmp_path / "worker")

    first = remote.engine.submit(there.send(spec))
    wait_until(lambda: remote.sim.requests)
    second = remote.engine.run(there.send(spec))
    remote.engine.run(there.host.cancel(str(spec.chat_id)))

    assert first.result(10)["outcome"] == "cancelled"
    assert second["outcome"] == "failed"
    with pytest.raises(ExecutorError, match="already running on this worker"):
        wire.result_of(second)


def test_no_api_key_reaches_the_reply_or_anything_else_when_the_run_fails(
    kernels: tuple[Kernel, Kernel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, remote = kernels
    remote.api_key = CANARY
    remote.sim.inject(Fault.server_error(500), times=100)  # every attempt fails
    there = Remote(remote, tmp_path / "worker")
    spec = two_turn_spec(tools=())

    async def failing() -> dict[str, Any]:
        reply = await there.send(spec)
        await there.replay.finished(str(spec.chat_id), reply["last_seq"])
        return reply

    with caplog.at_level(logging.DEBUG):
        reply = remote.engine.run(failing())

    assert reply["outcome"] == "failed"
    with pytest.raises(AgentError):
        wire.result_of(reply)
    assert CANARY not in repr(reply) and CANARY.encode() not in pickle.dumps(reply)
    assert CANARY not in repr(there.batches)
    assert CANARY not in json.dumps(remote.dump(), default=str)
    assert CANARY not in caplog.text


def test_a_cancel_that_arrives_before_its_run_ends_the_run_cancelled_at_once(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    # Actor calls travel on separate connections: a small cancel can overtake a big run.
    _, remote = kernels
    remote.sim.add_rule(Rule("think slowly", latency=30))
    spec = two_turn_spec(prompt="think slowly about it")
    there = Remote(remote, tmp_path / "worker")

    async def cancel_first() -> tuple[bool, dict[str, Any], list[str]]:
        known = await there.host.cancel(str(spec.chat_id))
        reply = await there.send(spec)
        await there.replay.finished(str(spec.chat_id), reply["last_seq"])
        return known, reply, await there.host.runs()

    known, reply, left = remote.engine.run(cancel_first())

    assert known is False  # not there yet
    assert reply["outcome"] == "cancelled"
    assert remote.sim.requests == []  # the model was never called
    assert left == []
    ((item,),) = [wire.items_of(b) for b in there.batches]
    assert item.kind == "end"
    with pytest.raises(asyncio.CancelledError):
        wire.result_of(reply)


def test_tools_sent_as_pickles_load_one_by_one_and_those_that_fail_are_named(
    kernels: tuple[Kernel, Kernel], tmp_path: Path
) -> None:
    _, remote = kernels
    remote.sim.add_rule(ADD_RULE)
    there = Remote(remote, tmp_path / "worker")
    # What a tool pickled by reference to a module only the kernel has looks like here.
    missing = b"cboonb_no_such_module_here\nhelper\n."
    blobs = {"add": cloudpickle.dumps(add), "helper": missing, "oops": pickle.dumps(3)}

    failed = remote.engine.run(there.host.register_tools(blobs, topic=TOPIC))
    result = remote.engine.run(there.run(two_turn_spec(tools=("add",)), send_tools=False))

    assert failed == {
        "helper": "ModuleNotFoundError: No module named 'boonb_no_such_module_here'",
        "oops": "not a Tool but a int",
    }
    assert result.error is None
    called = [(r["tool_name"], r["outcome"]) for r in remote.dump()["tool_traces"]]
    assert ("add", "success") in called  # the tool that loaded runs
