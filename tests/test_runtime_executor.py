"""The runtime's executor: built from the settings, replaced by ``use_executor``, closed at the end.

A real Runtime (its simulator over HTTP, its engine, a DuckDB file). The executor
installed here records what it is asked and runs it on the local executor, so the test
sees which executor background tasks and workflow agents went through.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from boonb import api, config
from boonb.agent.factory import RunSpec
from boonb.agent.loop import AgentResult
from boonb.background import SUBAGENT_ID_PREFIX
from boonb.executors import AgentRunSpec, ExecutorStatus
from boonb.executors.local import LocalExecutor
from boonb.frames import Frame, TaskUpdate
from boonb.runtime import Runtime


class Recording:
    """An executor that notes each spec and where it was closed, running agents locally."""

    name: Literal["local", "dask"] = "local"

    def __init__(self, runtime: Runtime) -> None:
        self.local = LocalExecutor(runtime.agent_factory)
        self.specs: list[AgentRunSpec] = []
        self.closed = threading.Event()
        self.closed_on: str | None = None

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        self.specs.append(spec)
        return await self.local.run_agent(spec)

    def describe(self) -> ExecutorStatus:
        return ExecutorStatus(name="local", problem="recording")

    async def aclose(self) -> None:
        self.closed_on = threading.current_thread().name
        self.closed.set()


class Holding(Recording):
    """An executor whose runs wait for ``release``; its close notes how many still ran."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.release = asyncio.Event()
        self.started = threading.Event()
        self.running = 0
        self.running_at_close: int | None = None

    async def run_agent(self, spec: AgentRunSpec) -> AgentResult:
        self.running += 1
        self.started.set()
        try:
            await self.release.wait()
            return await super().run_agent(spec)
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        self.running_at_close = self.running
        await super().aclose()


async def _nothing() -> None:
    pass


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    config.get_settings().project.mkdir(parents=True, exist_ok=True)
    made = Runtime()
    made.simulator().latency = 0
    yield made
    made.shutdown()


def test_the_default_executor_runs_agents_in_this_kernel(runtime: Runtime) -> None:
    executor = runtime.executor
    assert isinstance(executor, LocalExecutor)
    assert executor.factory is runtime.agent_factory
    assert runtime.executor is executor  # built once, not at each use


def test_background_tasks_run_on_the_installed_executor_with_their_chat_known_first(
    runtime: Runtime,
) -> None:
    recording = Recording(runtime)
    runtime.use_executor(recording)
    handle = api.spawn("say hi", tools=[], runtime=runtime)
    ended = handle.wait(60)
    assert ended.state == "completed"
    (spec,) = recording.specs
    assert ended.chat_id == spec.chat_id  # the task row names the chat the executor ran
    assert spec.agent_id is not None and spec.agent_id.startswith(SUBAGENT_ID_PREFIX)
    assert spec.tools == () and spec.prompt == "say hi"


def test_a_new_executor_closes_the_old_one_on_the_engine(runtime: Runtime) -> None:
    first, second = Recording(runtime), Recording(runtime)
    runtime.use_executor(first)
    runtime.use_executor(second)
    assert first.closed.wait(10) and first.closed_on == "boonb-engine"
    assert runtime.executor is second and not second.closed.is_set()


def test_changing_the_executor_settings_drops_the_executor_and_others_keep_it(
    runtime: Runtime,
) -> None:
    recording = Recording(runtime)
    runtime.use_executor(recording)
    config.update(model="sim-chat")  # not about where agents run
    assert runtime.executor is recording
    config.update(dask_address="tcp://127.0.0.1:8786")
    assert recording.closed.wait(10)
    rebuilt = runtime.executor
    assert isinstance(rebuilt, LocalExecutor)  # executor=local still: built anew from settings
    config.update(dask_address="off")
    assert runtime.executor is not rebuilt


def test_shutdown_closes_the_executor(runtime: Runtime) -> None:
    recording = Recording(runtime)
    runtime.use_executor(recording)
    runtime.shutdown()
    assert recording.closed.is_set() and recording.closed_on == "boonb-engine"


def test_a_settings_change_lets_running_agents_end_before_closing_their_executor(
    runtime: Runtime,
) -> None:
    holding = Holding(runtime)
    runtime.use_executor(holding)
    handle = api.spawn("say hi", tools=[], runtime=runtime)
    assert holding.started.wait(30)

    config.update(dask_address="tcp://127.0.0.1:8786")  # drops the executor
    runtime.engine.run(_nothing())  # the engine has handled the drop
    assert not holding.closed.is_set()  # the agent on it goes on
    assert isinstance(runtime.executor, LocalExecutor)  # new agents go to the new one
    runtime.engine.call_soon(holding.release.set)

    assert handle.wait(60).state == "completed"
    assert holding.closed.wait(10) and holding.running_at_close == 0


def test_at_shutdown_running_tasks_end_interrupted_before_their_executor_closes(
    runtime: Runtime,
) -> None:
    holding = Holding(runtime)
    runtime.use_executor(holding)
    updates: list[Frame] = []
    runtime.bus.subscribe(updates.append, types=("task:update",))
    api.spawn("say hi", tools=[], runtime=runtime)
    assert holding.started.wait(30)

    runtime.shutdown()

    assert holding.running_at_close == 0  # closed after its agent was interrupted
    states = [u.state for u in updates if isinstance(u, TaskUpdate)]
    assert states[-1] == "interrupted"


def test_an_executor_built_while_its_settings_changed_is_built_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    build = runtime._build_executor

    def build_while_changing(name: str) -> Any:
        if not built:  # the first build: %boonb config lands meanwhile
            config.update(dask_address="tcp://127.0.0.1:8786")
        built.append(build(name))
        return built[-1]

    monkeypatch.setattr(runtime, "_build_executor", build_while_changing)

    executor = runtime.executor

    assert len(built) == 2 and executor is built[1]  # made for the settings as they are
    config.update(model="sim-chat")  # not about where agents run: it is kept
    assert runtime.executor is executor


class FailingToClose(Recording):
    async def aclose(self) -> None:
        await super().aclose()
        raise OSError("the scheduler went away")


def test_an_executor_that_fails_to_close_says_so_in_the_log(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingToClose(runtime)
    runtime.use_executor(failing)
    with caplog.at_level(logging.ERROR, logger="boonb"):
        runtime.use_executor(Recording(runtime))
        assert failing.closed.wait(10)
        runtime.engine.run(_nothing())  # after the close's own callbacks
    assert "closing the local executor failed" in caplog.text
    assert "the scheduler went away" in caplog.text


def test_the_factorys_view_of_a_run_spec_names_every_field_of_it() -> None:
    # from_spec reads a spec through RunSpec: a field added to one only is silently ignored.
    read = {name for name, value in vars(RunSpec).items() if isinstance(value, property)}
    assert read | {"prompt", "images"} == set(AgentRunSpec.model_fields)


SCRIPT = """
writer = agent("writer", prompt="You write one line.")
result = writer.run("a line about ducks")
"""


@pytest.mark.slow  # a sandbox worker process
def test_workflow_agents_run_on_the_installed_executor(runtime: Runtime) -> None:
    recording = Recording(runtime)
    runtime.use_executor(recording)
    run_id = runtime.workflows.run_script(SCRIPT)
    status = runtime.workflows.wait(run_id, timeout=120)
    assert status.state == "completed", status
    (spec,) = recording.specs
    assert (spec.agent_id, spec.workflow_run_id) == ("writer", run_id)
    assert spec.system_prompt == "You write one line." and spec.max_turns == 8


class Described(Recording):
    """An executor that describes itself as ``status``."""

    def __init__(self, runtime: Runtime, status: ExecutorStatus) -> None:
        super().__init__(runtime)
        self.status = status

    def describe(self) -> ExecutorStatus:
        return self.status


def test_status_shows_the_workers_and_why_a_worker_is_left_out(
    runtime: Runtime,
) -> None:
    from boonb.magics.status import executor_text

    assert executor_text(runtime) == "local (agents run in this kernel)"
    left_out = "1 worker left out (it runs boonb 0.1), the others take runs"
    runtime.use_executor(
        Described(
            runtime,
            ExecutorStatus(
                name="dask",
                address="tcp://10.0.0.5:8786",
                workers=("tcp://10.0.0.6:4000", "tcp://10.0.0.7:4000"),
                problem=left_out,
            ),
        )
    )
    assert executor_text(runtime).splitlines() == [
        "dask (2 workers at tcp://10.0.0.5:8786)",
        "workers    tcp://10.0.0.6:4000, tcp://10.0.0.7:4000",
        f"problem    {left_out}",
    ]
    runtime.use_executor(
        Described(
            runtime,
            ExecutorStatus(name="dask", address="tcp://10.0.0.5:8786", problem="no workers"),
        )
    )
    assert executor_text(runtime) == "dask at tcp://10.0.0.5:8786, unavailable: no workers"
