from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

from boonb import config
from boonb.agent import Agent, ToolContext, default_registry
from boonb.agent.recorder import Recorder
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.frames import Frame, ToolTraceComplete, TraceRecord
from boonb.providers import ChatClient, get_profile
from boonb.sim import SimServer
from boonb.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_trace(
    *,
    chat_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    turn: int = 0,
    seconds: float = 0.0,
    trace_id: uuid.UUID | None = None,
    **fields: object,
) -> TraceRecord:
    values: dict[str, object] = {
        "id": trace_id or uuid.uuid4(),
        "session_id": session_id or uuid.uuid4(),
        "chat_id": chat_id,
        "turn_number": turn,
        "kind": "tool",
        "tool_name": "read_file",
        "input": {"path": "a.txt"},
        "output": "text",
        "started_at": T0 + timedelta(seconds=seconds),
        "latency_ms": 12.5,
    }
    values.update(fields)
    return TraceRecord(**values)  # type: ignore[arg-type]


def trace_frame(**kwargs: object) -> ToolTraceComplete:
    return ToolTraceComplete(trace=make_trace(**kwargs))  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".boonb" / "boonb.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path, flush_interval=0.05)
    yield s
    s.close()


class _FileOrBrowserScheduling(LoadFileScheduling):
    """``make test``'s pytest-xdist schedule: a worker takes a test file at a time, or all
    the browser tests.

    A file's tests keep their module fixtures (a Jupyter server, a Dask cluster) on one
    worker. The browser tests run one at a time: two Chromiums, two Labs and their kernels
    at once on two cores made waits of 5-30 s time out. (xdist's own ``loadgroup`` cannot
    do this under pytest 9.2, whose test ids it no longer rewrites.)
    """

    def _split_scope(self, nodeid: str) -> str:
        return (
            "tests/browser" if nodeid.startswith("tests/browser/") else super()._split_scope(nodeid)
        )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadFileScheduling | None:
    if config.getoption("dist") != "loadfile":
        return None  # another --dist asked for: xdist's own
    return _FileOrBrowserScheduling(config, log)


@pytest.fixture(autouse=True)
def no_event_loop_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test must not leave an event loop marked running on the main thread.

    A later test's ``asyncio.run`` in the same process would fail for it, far from the
    cause (Playwright's loop did so twice under pytest-xdist). Browser tests are exempt:
    Playwright's loop runs for their whole module (tests/browser/conftest.py).
    """
    yield
    if request.node.get_closest_marker("browser") is None:
        left = asyncio.events._get_running_loop()
        assert left is None, f"a loop is left running on the main thread: {left!r}"


@pytest.fixture(autouse=True)
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets settings of its own, with the project in a temp dir.

    Settings a developer's shell may carry are cleared, so none switches on a provider or
    trace export the test did not ask for.
    """
    for var in os.environ:
        if var.startswith(("BOONB_", "OTEL_")):
            monkeypatch.delenv(var)
    for var in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BOONB_PROJECT", str(tmp_path / "project"))
    config.reset()
    yield
    config.reset()


# An agent on the simulator, recording into a real store (shared by the agent tests).

SECRET = "sk-test-0123456789abcdefSECRET"


@dataclass
class Env:
    sim: SimServer
    store: Store
    bus: Bus
    engine: Engine
    project: Path
    frames: list[Frame] = field(default_factory=list)

    def agent(self, *, tools=None, api_key: str | None = None, max_retries: int = 2, **kw) -> Agent:
        profile = get_profile("sim").with_overrides(base_url=self.sim.base_url)
        client = ChatClient(profile, api_key=api_key, max_retries=max_retries, backoff=0.01)
        recorder = Recorder(
            self.bus, self.store.writer.enqueue, session_id=uuid.uuid4(), chat_id=uuid.uuid4()
        )
        registry = default_registry()
        chosen = list(registry) if tools is None else tools
        return Agent(
            client,
            recorder=recorder,
            tools=chosen,
            context=ToolContext(project_root=self.project),
            **kw,
        )

    def run(self, agent: Agent, prompt: str):
        return self.engine.run(agent.run(prompt))

    def rows(self, sql: str, *params: object) -> list[tuple]:
        self.store.writer.flush()
        with self.store.db.connection() as con:
            return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def env(tmp_path: Path, db_path: Path) -> Iterator[Env]:
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "notes.txt").write_text("alpha\nbeta\n")
    store = Store(db_path, flush_interval=0.05)
    bus = Bus()
    bus.subscribe(store.writer.enqueue, types={"tool_trace:complete", "model_call:complete"})
    engine = Engine()
    with SimServer() as sim:
        e = Env(sim, store, bus, engine, project)
        bus.subscribe(e.frames.append)
        yield e
    engine.shutdown()
    store.close()
