"""Agents on a real Dask cluster (two worker processes), against the same runs in the kernel.

One LocalCluster serves the whole module (see tests/dask_kit.py). Each run gets a fresh
simulator and a fresh project database, so a comparison sees the same prompts, the same
token counts and nothing left by the other run.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import json
import logging
import os
import pickle
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster
from pydantic import SecretStr

from boonb import config
from boonb.agent.tools.definition import tool
from boonb.api import use_dask
from boonb.errors import ExecutorError, ExecutorUnavailable
from boonb.executors import dask as dask_executor
from boonb.executors.dask import DaskExecutor
from boonb.executors.dask_hosts import Host, Sendable
from boonb.executors.host import AgentHost
from boonb.frames import Frame, WorkflowStep
from boonb.runtime import Runtime
from boonb.sim import Rule, SimServer
from tests.dask_kit import Cluster, start_cluster, stop_cluster
from tests.kernels import Kernel

pytestmark = pytest.mark.slow

WAIT_S = 60.0
CANARY = "sk-CANARY-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory.mktemp("dask"))
    yield started
    stop_cluster(started)


@tool
def shout(text: str) -> str:
    """Say it louder.

    Args:
        text: What to say.

    """
    return text.upper() + "!"


# The simulator calls `shout` on a prompt's first turn, then answers: two turns an agent.
SHOUT_FIRST = Rule("topic", tool_calls=[{"name": "shout", "arguments": {"text": "hello"}}])


@dataclass
class Kernelish:
    """A runtime as a kernel has it, on its own simulator and database."""

    runtime: Runtime
    sim: SimServer
    frames: list[Frame] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def heard(self, frame: Frame) -> None:
        with self._lock:
            self.frames.append(frame)

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        store = self.runtime.store
        store.writer.flush()
        with store.db.connection() as con:
            return con.execute(sql, list(params)).fetchall()

    def executor(self) -> DaskExecutor:
        found = self.runtime.executor
        assert isinstance(found, DaskExecutor)
        return found


@contextlib.contextmanager
def kernelish(
    folder: Path,
    *,
    cluster: Cluster | None,
    rules: tuple[Rule, ...] = (SHOUT_FIRST,),
    latency: float = 0.02,
    **settings: Any,
) -> Iterator[Kernelish]:
    """A runtime whose agents run on ``cluster`` (or in the kernel when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    # A prefix cache so large it never fills a block: which of many parallel agents hits
    # the cache first would otherwise change token counts from run to run.
    with SimServer(latency=latency, rules=rules, cache_block=1_000_000) as sim:
        values: dict[str, Any] = {
            "project": folder,
            "provider": "sim",
            "base_url": sim.base_url,
            "flush_interval_ms": 50,
            "background_max_concurrent": 20,
        }
        values.update(settings)
        runtime = Runtime(config.Settings(**values))
        runtime.tools.register(shout)
        box = Kernelish(runtime, sim)
        runtime.bus.subscribe(box.heard)
        try:
            if cluster is not None:
                executor = DaskExecutor.connect(
                    runtime.agent_factory, engine=runtime.engine, address=cluster.address
                )
                executor.wait_ready()
                runtime.use_executor(executor)
            yield box
        finally:
            runtime.shutdown()


# What a run leaves, with ids and times taken out.

_TRACE_FIELDS = (
    "id, parent_id, kind, tool_name, outcome, turn_number, input_tokens, output_tokens, "
    "cache_tokens, reasoning_tokens, tokens_used, error, input, output, agent_id"
)


def trace_tree(box: Kernelish) -> list[str]:
    """Every trace tree of the project as nested nodes, children in a canonical order."""
    rows = box.rows(f"SELECT {_TRACE_FIELDS} FROM tool_traces")
    names = _TRACE_FIELDS.split(", ")
    nodes = {r[0]: dict(zip(names, r, strict=True)) for r in rows}
    children: dict[Any, list[dict[str, Any]]] = {}
    for node in nodes.values():
        parent = node["parent_id"] if node["parent_id"] in nodes else None
        children.setdefault(parent, []).append(node)

    def canonical(node: dict[str, Any]) -> str:
        plain = {k: _no_ids(v) for k, v in node.items() if k not in ("id", "parent_id")}
        plain["children"] = sorted(canonical(c) for c in children.get(node["id"], []))
        return json.dumps(plain, sort_keys=True, default=str)

    return sorted(canonical(n) for n in children.get(None, []))


def _no_ids(value: Any) -> Any:
    """A column with ids masked: uuids (an agent row names its chat), a task's agent id."""
    if not isinstance(value, str):
        return value
    return _TASK_AGENT.sub("task-<id>", _UUID.sub("<id>", value))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TASK_AGENT = re.compile(r"task-[0-9a-f]{8}")


def messages(box: Kernelish) -> list[str]:
    """Each chat's messages and parts, chats in a canonical order."""
    rows = box.rows(
        "SELECT m.chat_id, m.role, m.turn_number, p.position, p.type, p.text, p.data "
        "FROM messages m LEFT JOIN message_parts p ON p.message_id = m.id "
        "ORDER BY m.chat_id, m.turn_number, m.created_at, p.position"
    )
    chats: dict[Any, list[tuple[Any, ...]]] = {}
    for chat_id, *rest in rows:
        chats.setdefault(chat_id, []).append(tuple(_no_ids(v) for v in rest))
    return sorted(json.dumps(v, default=str) for v in chats.values())


def chats(box: Kernelish) -> list[tuple[Any, ...]]:
    rows = box.rows("SELECT title, provider, model, agent_id FROM chats")
    return sorted((tuple(_no_ids(v) for v in r) for r in rows), key=repr)


def sessions(box: Kernelish) -> list[tuple[Any, ...]]:
    rows = box.rows("SELECT state, snapshot FROM agent_sessions")
    kept = []
    for state, snapshot in rows:
        snap = json.loads(snapshot)
        kept.append((state, snap.get("turn_number"), json.dumps(snap.get("messages"))))
    return sorted(kept)


def tasks(box: Kernelish) -> list[tuple[Any, ...]]:
    rows = box.rows("SELECT state, result, error, progress, payload FROM tasks")
    kept = []
    for state, result, error, progress, payload in rows:
        answer = json.loads(result) if result else None
        if answer is not None:
            answer["summary"].pop("wall_time_s", None)
        shown = json.loads(progress) if progress else {}
        shown.pop("last_tool_at", None)
        kept.append((state, json.dumps(answer, sort_keys=True), error, shown, payload))
    return sorted(kept, key=repr)


def steps(box: Kernelish) -> list[tuple[Any, ...]]:
    """Each step's latest frame: label, state, tokens, error."""
    latest: dict[Any, WorkflowStep] = {}
    for frame in list(box.frames):
        if isinstance(frame, WorkflowStep):
            latest[frame.trace_id] = frame
    return sorted(
        (s.label, s.agent_id, s.state, s.tokens_used, s.error, s.input_preview)
        for s in latest.values()
    )


def dump(box: Kernelish) -> dict[str, Any]:
    return {
        "traces": trace_tree(box),
        "messages": messages(box),
        "chats": chats(box),
        "sessions": sessions(box),
        "tasks": tasks(box),
        "steps": steps(box),
    }


# The comparisons with the local executor.

PARALLEL_20 = """
a = agent("analyst", prompt="You analyse.", tools=["shout"])
result = parallel([(a, f"topic {i}") for i in range(20)])
"""


def _run_workflow(box: Kernelish) -> Any:
    manager = box.runtime.workflows
    run_id = manager.run_script(PARALLEL_20, timeout=WAIT_S)
    status = manager.wait(run_id, timeout=WAIT_S)
    assert status.state == "completed", status
    return status.result


def test_workflow_of_20_parallel_agents_matches_local_executor(
    cluster: Cluster, tmp_path: Path
) -> None:
    with kernelish(tmp_path / "local", cluster=None) as local:
        local_result = _run_workflow(local)
        expected = dump(local)
    with kernelish(tmp_path / "dask", cluster=cluster) as remote:
        remote_result = _run_workflow(remote)
        got = dump(remote)
        ran_on = {r[0] for r in remote.rows("SELECT DISTINCT session_id FROM tool_traces")}
        session = remote.runtime.session_id
    assert remote_result == local_result
    assert len(got["steps"]) == 20 and {s[2] for s in got["steps"]} == {"completed"}
    assert ran_on == {session}  # the kernel wrote the rows, as its own
    for part in expected:
        assert got[part] == expected[part], _diff(part, expected[part], got[part])


def _diff(part: str, expected: list[Any], got: list[Any]) -> str:
    """Where the Dask run's rows differ from the local run's (a failure's message)."""
    lines = difflib.unified_diff(
        [str(x) for x in expected], [str(x) for x in got], "local", "dask", lineterm="", n=0
    )
    return f"{part} differ:\n" + "\n".join(list(lines)[:12])


def _spawn_20(box: Kernelish) -> list[str]:
    handles = [
        box.runtime.tasks.spawn(f"topic {i}", tools=["shout"], metadata={"name": f"t{i}"})
        for i in range(20)
    ]
    ended = [box.runtime.tasks.wait(h.task_id, WAIT_S) for h in handles]
    return [u.state for u in ended]


def test_20_background_subagents_match_local_executor(cluster: Cluster, tmp_path: Path) -> None:
    with kernelish(tmp_path / "local", cluster=None) as local:
        assert _spawn_20(local) == ["completed"] * 20
        expected = dump(local)
    with kernelish(tmp_path / "dask", cluster=cluster) as remote:
        assert _spawn_20(remote) == ["completed"] * 20
        got = dump(remote)
        used = remote.executor().describe()
    assert len(used.workers) == 2
    for part in expected:
        assert got[part] == expected[part], _diff(part, expected[part], got[part])


# Cancel, and a worker killed mid-run.

SLOW = Rule("slow", reply="finally", latency=30)


def _until(condition: Any, what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.02)
    return value


def test_cancel_running_workflow_on_cluster_closes_traces_and_stops_worker_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = 'a = agent("a", prompt="p")\nresult = parallel([(a, f"slow {i}") for i in range(4)])'
    with kernelish(tmp_path, cluster=cluster, rules=(SLOW,)) as box:
        manager = box.runtime.workflows
        run_id = manager.run_script(script, timeout=WAIT_S)
        _until(lambda: len(box.sim.requests) >= 4, "the four model calls")
        executor = box.executor()
        running = sum(len(h) for h in _actor_runs(box, executor).values())
        assert running == 4
        manager.cancel(run_id)
        assert manager.wait(run_id, timeout=15).state == "cancelled"
        left = _actor_runs(box, executor)
        outcomes = box.rows(
            "SELECT DISTINCT outcome FROM tool_traces WHERE kind IN ('model', 'agent')"
        )
        step_states = {s[2] for s in steps(box)}
        states = box.rows("SELECT DISTINCT state FROM agent_sessions")
    assert left == {a: [] for a in left}  # nothing runs on the workers any more
    assert outcomes == [("cancelled",)]
    assert step_states == {"cancelled"}
    assert states == [("cancelled",)]


def _actor_runs(box: Kernelish, executor: DaskExecutor) -> dict[str, list[str]]:
    async def ask() -> dict[str, list[str]]:
        return {a: await h.actor.runs() for a, h in executor._pool.hosts.items()}

    return box.runtime.engine.run(ask())


KILLED_SCRIPT = """
a = agent("a", prompt="p", tools=["shout"])
result = parallel([(a, f"topic w{i}") for i in range(4)])
"""


def test_killed_worker_fails_its_agents_tasks_and_steps_others_finish(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Turn one calls the tool at once; turn two's model call takes 6 s, long enough to
    # kill a worker while all agents (4 tasks, a workflow's 4 steps) wait in it.
    rules = (SHOUT_FIRST, Rule(".", role="tool", latency=6))
    with kernelish(tmp_path, cluster=cluster, rules=rules) as box:
        handles = [box.runtime.tasks.spawn(f"topic {i}", tools=["shout"]) for i in range(4)]
        run_id = box.runtime.workflows.run_script(KILLED_SCRIPT, timeout=WAIT_S)
        _until(lambda: len(box.sim.requests) >= 16, "every agent in its second model call")
        victim, pid = sorted(cluster.worker_pids().items())[0]
        os.kill(pid, signal.SIGKILL)
        ended = [box.runtime.tasks.wait(h.task_id, WAIT_S) for h in handles]
        workflow = box.runtime.workflows.wait(run_id, timeout=WAIT_S)
        failed = [u for u in ended if u.state == "failed"]
        completed = [u for u in ended if u.state == "completed"]
        kept = box.rows(
            "SELECT count(*) FROM tool_traces WHERE kind = 'tool' AND outcome = 'success' "
            "AND chat_id IN (" + ",".join(f"'{u.chat_id}'" for u in failed) + ")"
        )
        lost_sessions = box.rows(
            "SELECT DISTINCT state FROM agent_sessions WHERE chat_id IN ("
            + ",".join(f"'{u.chat_id}'" for u in failed)
            + ")"
        )
        step_ends = steps(box)
        again = box.runtime.tasks.spawn("topic again", tools=["shout"])
        after = box.runtime.tasks.wait(again.task_id, WAIT_S)
    assert failed and completed and len(failed) + len(completed) == 4
    for update in failed:
        assert update.error is not None and f"the Dask worker {victim}" in update.error
        assert "died or stopped answering mid-run" in update.error
    assert kept == [(len(failed),)]  # each lost agent's finished tool call is stored
    assert lost_sessions == [("failed",)]
    # The workflow treats a lost worker as any failed agent: its step fails, it goes on.
    assert workflow.state == "completed", workflow
    lost_steps = [s for s in step_ends if s[2] == "failed"]
    assert lost_steps and len(lost_steps) < 4
    for _, _, _, _, error, _ in lost_steps:
        assert error is not None and f"the Dask worker {victim}" in error
    assert isinstance(workflow.result, list)
    assert workflow.result.count(None) == len(lost_steps)
    assert after.state == "completed"  # on the surviving worker
    _until(lambda: len(cluster.client.scheduler_info()["workers"]) == 2, "the restarted worker")


def test_after_the_scheduler_connection_drops_a_new_run_gets_a_new_actor_not_an_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    # distributed cancels a client's futures when its scheduler connection drops, which
    # lets go of the actors: a run sent after that never reached a worker, and must not
    # fail as if a worker had died under it.
    with kernelish(tmp_path, cluster=cluster) as box:
        executor = box.executor()
        hosts = list(executor._pool.hosts.values())

        async def drop() -> None:
            assert executor._client is not None and executor._client.scheduler_comm
            await executor._client.scheduler_comm.comm.close()

        box.runtime.engine.run(drop())
        _until(lambda: all(h.future.status == "cancelled" for h in hosts), "the actors let go of")
        handle = box.runtime.tasks.spawn("topic", tools=["shout"])
        ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
    assert ended.state == "completed", ended.error


def test_frozen_worker_fails_its_agents_after_two_missed_heartbeats(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A stopped process answers nothing and closes nothing: only the heartbeat notices.
    # 2 s beats: a loaded CI machine can be late by a second, and the healthy worker's
    # runs must not fail for it.
    rules = (SHOUT_FIRST, Rule(".", role="tool", latency=3))
    with kernelish(tmp_path, cluster=cluster, rules=rules, dask_heartbeat_s=2.0) as box:
        handles = [box.runtime.tasks.spawn(f"topic {i}", tools=["shout"]) for i in range(4)]
        _until(lambda: len(box.sim.requests) >= 8, "every agent in its second model call")
        victim, pid = sorted(cluster.worker_pids().items())[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            ended = [box.runtime.tasks.wait(h.task_id, WAIT_S) for h in handles]
        finally:
            os.kill(pid, signal.SIGCONT)
    failed = [u for u in ended if u.state == "failed"]
    assert failed and len(failed) < 4
    for update in failed:
        assert update.error is not None and f"the Dask worker {victim}" in update.error
        assert "heartbeats missed" in update.error


# Secrets.


def test_no_api_key_in_scheduler_events_tasks_logs_or_store(
    cluster: Cluster, tmp_path: Path
) -> None:
    def debug_core() -> None:  # on each worker: log every message it receives
        import sys

        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.DEBUG)
        core = logging.getLogger("distributed.core")
        core.addHandler(handler)
        core.setLevel(logging.DEBUG)

    def quiet_core() -> None:
        core = logging.getLogger("distributed.core")
        for handler in list(core.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.level == logging.DEBUG:
                core.removeHandler(handler)
        core.setLevel(logging.WARNING)

    cluster.client.run(debug_core)
    cluster.client.run_on_scheduler(_count_proxied)
    try:
        with kernelish(
            tmp_path, cluster=cluster, provider="openai", openai_api_key=SecretStr(CANARY)
        ) as box:
            assert box.runtime.provider().api_key == CANARY  # the run does use the key
            handles = [box.runtime.tasks.spawn(f"topic {i}", tools=["shout"]) for i in range(2)]
            assert [box.runtime.tasks.wait(h.task_id, WAIT_S).state for h in handles] == [
                "completed"
            ] * 2
            store_text = _all_tables(box)
            specs = cluster.client.run_on_scheduler(_scheduler_tasks)
            events = repr(cluster.client.get_events())
            logs = repr(cluster.client.get_worker_logs()) + repr(
                cluster.client.get_scheduler_logs()
            )
    finally:
        cluster.client.run(quiet_core)
        proxied = cluster.client.run_on_scheduler(_count_proxied, stop=True)
    stderr = cluster.worker_stderr()
    assert proxied == 0  # no actor call (with its key) went through the scheduler
    assert "actor_execute" in stderr  # the run calls were logged, with their arguments
    assert "**********" in stderr  # the key among them, as a SecretStr prints
    assert "boonb-host-" in specs  # the actors' tasks were looked at
    for where, text in [
        ("the workers' stderr", stderr),
        ("scheduler tasks", specs),
        ("scheduler events", events),
        ("worker and scheduler logs", logs),
        ("the project database", store_text),
    ]:
        assert CANARY not in text, where


def _count_proxied(dask_scheduler: Any, stop: bool = False) -> int:
    """Count the scheduler's ``proxy`` calls (an actor call not sent to its worker directly).

    Returns the count so far; ``stop`` puts the scheduler's own handler back.
    """
    handlers = dask_scheduler.handlers
    if stop:
        counter = handlers["proxy"]
        handlers["proxy"] = counter.original
        return int(counter.calls)

    original = handlers["proxy"]

    async def counted(*args: Any, **kwargs: Any) -> Any:
        counted.calls += 1  # type: ignore[attr-defined]
        return await original(*args, **kwargs)

    counted.calls = 0  # type: ignore[attr-defined]
    counted.original = original  # type: ignore[attr-defined]
    handlers["proxy"] = counted
    return 0


def _scheduler_tasks(dask_scheduler: Any) -> str:
    """Every task the scheduler holds: its key and its pickled run_spec."""
    out = []
    for key, state in dask_scheduler.tasks.items():
        out.append(repr(key))
        out.append(repr(pickle.dumps(state.run_spec)))
    return "\n".join(out)


def _all_tables(box: Kernelish) -> str:
    tables = [r[0] for r in box.rows("SELECT table_name FROM information_schema.tables")]
    return "\n".join(repr(box.rows(f'SELECT * FROM "{t}"')) for t in tables)


# Refusals.


def test_a_tool_that_cannot_be_pickled_fails_its_task_saying_what_to_do(
    cluster: Cluster, tmp_path: Path
) -> None:
    lock = threading.Lock()

    @tool
    def locked(text: str) -> str:
        """Hold a lock.

        Args:
            text: Anything.

        """
        with lock:
            return text

    with kernelish(tmp_path, cluster=cluster) as box:
        box.runtime.tools.register(locked)
        handle = box.runtime.tasks.spawn("topic", tools=["locked"])
        ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
        calls = len(box.sim.requests)
    assert ended.state == "failed"
    assert ended.error is not None
    assert "the tool 'locked' cannot be sent to the Dask workers" in ended.error
    assert "executor=local" in ended.error
    assert calls == 0  # refused before the run


HELPER_MODULE = """
def note(text: str) -> str:
    return text.lower()
"""


def test_a_tool_from_a_module_the_workers_lack_fails_its_task_naming_the_tool(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A notebook's own utils.py: the kernel imports it, the workers (spawned before) cannot.
    # cloudpickle sends the tool by value and the helper it calls by reference.
    name = f"boonb_kernel_only_{uuid.uuid4().hex[:8]}"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{name}.py").write_text(HELPER_MODULE)
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        helper = importlib.import_module(name).note

        @tool
        def fetch_note(text: str) -> str:
            """Fetch a note.

            Args:
                text: Which note.

            """
            return str(helper(text))

        with kernelish(tmp_path / "k", cluster=cluster) as box:
            box.runtime.tools.register(fetch_note)
            handle = box.runtime.tasks.spawn("topic", tools=["fetch_note", "shout"])
            ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
            calls = len(box.sim.requests)
    finally:
        sys.path.remove(str(tmp_path / "mods"))
        sys.modules.pop(name, None)
    assert ended.state == "failed"
    assert ended.error is not None
    assert "could not load the tool 'fetch_note'" in ended.error, ended.error
    assert f"ModuleNotFoundError: No module named '{name}'" in ended.error
    assert "install that module on the workers" in ended.error
    assert calls == 0  # refused before the run


class _SlowActor:
    """Stands in for distributed's actor proxy: its tool send waits until let through."""

    def __init__(self, answer: dict[str, str]) -> None:
        self.gate = asyncio.Event()
        self.answer = answer
        self.sends: list[list[str]] = []

    async def register_tools(self, blobs: dict[str, bytes], *, topic: str) -> dict[str, str]:
        await self.gate.wait()
        self.sends.append(sorted(blobs))
        return self.answer


async def _two_runs_send(actor: _SlowActor) -> tuple[bool, list[BaseException | None], Host]:
    """Two runs needing the same new tool on one worker; is the second held until it is there?"""
    host = Host("tcp://10.0.0.7:1234", actor, future=None)
    needed = [Sendable("shout", 1, b"tool")]
    first = asyncio.ensure_future(host.send_tools(needed, "topic"))
    second = asyncio.ensure_future(host.send_tools(needed, "topic"))
    for _ in range(20):  # let both run until they block
        await asyncio.sleep(0)
    held = not second.done()
    actor.gate.set()
    ends = await asyncio.gather(first, second, return_exceptions=True)
    return held, [e if isinstance(e, BaseException) else None for e in ends], host


def test_a_run_waits_for_the_tools_another_run_is_sending_to_its_worker() -> None:
    # Each actor call has its own connection: a run sent before its tools arrive could
    # reach the worker first and fail with "unknown tool".
    actor = _SlowActor({})
    held, errors, _ = asyncio.run(_two_runs_send(actor))
    assert held
    assert errors == [None, None]
    assert actor.sends == [["shout"]]  # sent once


def test_tools_a_worker_cannot_load_fail_every_run_waiting_for_them_and_are_sent_again() -> None:
    actor = _SlowActor({"shout": "ModuleNotFoundError: No module named 'utils'"})
    held, errors, host = asyncio.run(_two_runs_send(actor))
    assert held
    for error in errors:
        assert isinstance(error, ExecutorError)
        assert "could not load the tool 'shout': ModuleNotFoundError" in str(error)
    assert host.tools == {}  # the next run sends it again


def _pretend_boonb(version: str | None) -> None:
    """On a worker: its boonb says it is ``version`` (None: its own again)."""
    import importlib.metadata

    from boonb.executors import host

    def pretended(_: str) -> str:
        return str(version)

    host.version = pretended if version is not None else importlib.metadata.version  # type: ignore[assignment]


def test_a_worker_with_another_boonb_is_left_out_and_the_others_take_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    bad, good = sorted(cluster.worker_pids())
    cluster.client.run(_pretend_boonb, "0.0.1", workers=[bad])
    try:
        with kernelish(tmp_path, cluster=cluster) as box:
            handles = [box.runtime.tasks.spawn(f"topic {i}", tools=["shout"]) for i in range(4)]
            states = [box.runtime.tasks.wait(h.task_id, WAIT_S).state for h in handles]
            status = box.executor().describe()
    finally:
        cluster.client.run(_pretend_boonb, None, workers=[bad])
    assert states == ["completed"] * 4
    assert status.workers == (good,)
    assert status.problem is not None
    assert f"the Dask worker {bad} runs boonb 0.0.1" in status.problem
    assert "install the same boonb on the workers" in status.problem


async def _failing_hello(self: Any) -> dict[str, Any]:
    raise ValueError("boom")


_HELLO = AgentHost.hello


def _break_hello(broken: bool) -> None:
    """On a worker: its boonb fails the handshake (or answers again)."""
    AgentHost.hello = _failing_hello if broken else _HELLO  # type: ignore[method-assign]


def _actors_of(session: str) -> Any:
    def held(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(session)]

    return held


def test_with_no_usable_worker_a_run_fails_saying_why_and_no_actor_is_left(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.run(_break_hello, True)
    try:
        with kernelish(tmp_path, cluster=None) as box:
            executor = DaskExecutor.connect(
                box.runtime.agent_factory, engine=box.runtime.engine, address=cluster.address
            )
            box.runtime.use_executor(executor)
            handle = box.runtime.tasks.spawn("topic", tools=["shout"])
            ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
            status = executor.describe()
            session = f"boonb-host-{box.runtime.session_id.hex[:8]}"
            # A release reaches the scheduler a moment later, on the client's stream.
            held = _until(
                lambda: not cluster.client.run_on_scheduler(_actors_of(session)),
                "the actors released",
                timeout=15,
            )
    finally:
        cluster.client.run(_break_hello, False)
    assert ended.state == "failed" and ended.error is not None
    assert "no worker of the Dask cluster" in ended.error
    for address in cluster.worker_pids():
        assert f"boonb on the Dask worker {address} failed its handshake" in ended.error
    assert "ValueError: boom" in ended.error
    assert status.workers == () and status.problem is not None
    assert held  # the actors that failed their handshake were released


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_failed_connect_is_tried_again_by_a_later_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel started before its cluster: the first run cannot connect, a later one does.
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2.0)
    monkeypatch.setattr(dask_executor, "RETRY_S", 0.0)
    port = _free_port()
    with kernelish(tmp_path, cluster=None) as box:
        executor = DaskExecutor.connect(
            box.runtime.agent_factory,
            engine=box.runtime.engine,
            address=f"tcp://127.0.0.1:{port}",
        )
        box.runtime.use_executor(executor)
        first = box.runtime.tasks.spawn("topic", tools=["shout"])
        before = box.runtime.tasks.wait(first.task_id, WAIT_S)
        with LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            scheduler_port=port,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ):
            again = box.runtime.tasks.spawn("topic", tools=["shout"])
            after = box.runtime.tasks.wait(again.task_id, WAIT_S)
            status = executor.describe()
    assert before.state == "failed" and before.error is not None
    assert "cannot reach the Dask scheduler" in before.error
    assert after.state == "completed", after.error
    assert len(status.workers) == 1 and status.problem is None


def test_kernel_only_tools_are_refused_on_a_worker_with_what_to_do(
    cluster: Cluster, tmp_path: Path
) -> None:
    # spawn_subagent's function holds the kernel's tasks: it reaches the worker without it.
    calls = [
        {"name": "spawn_subagent", "arguments": {"prompt": "help"}},
        {"name": "notebook_vars", "arguments": {}},
    ]
    rules = (Rule("topic", tool_calls=calls),)
    with kernelish(tmp_path, cluster=cluster, rules=rules) as box:
        handle = box.runtime.tasks.spawn("topic", tools=["spawn_subagent", "notebook_vars"])
        ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
        refused = box.rows(
            "SELECT tool_name, outcome, error FROM tool_traces WHERE kind = 'tool' ORDER BY 1"
        )
        spawned = box.rows("SELECT count(*) FROM tasks")
    assert ended.state == "completed"  # the model read the refusals and answered
    assert [(name, outcome) for name, outcome, _ in refused] == [
        ("notebook_vars", "error"),
        ("spawn_subagent", "error"),
    ]
    for name, _, error in refused:
        assert f"`{name}` runs only in the kernel" in error
        assert "executor=local" in error
    assert spawned == [(1,)]  # no subagent was started


def test_executor_dask_without_an_address_says_how_to_give_one(tmp_path: Path) -> None:
    with kernelish(tmp_path, cluster=None, executor="dask") as box:
        handle = box.runtime.tasks.spawn("topic", tools=["shout"])
        ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
    assert ended.state == "failed"
    assert ended.error is not None and "set BOONB_DASK_ADDRESS" in ended.error


def test_use_dask_takes_a_users_client_and_leaves_it_open(cluster: Cluster, tmp_path: Path) -> None:
    with kernelish(tmp_path, cluster=None) as box:
        status = use_dask(cluster.client, runtime=box.runtime)
        handle = box.runtime.tasks.spawn("topic", tools=["shout"])
        ended = box.runtime.tasks.wait(handle.task_id, WAIT_S)
        sessions_seen = box.rows("SELECT DISTINCT session_id FROM tool_traces")
        executor = box.executor()
    assert status.name == "dask" and len(status.workers) == 2
    assert status.address == cluster.address
    assert ended.state == "completed"
    assert ended.chat_id is not None and executor.provider_of(ended.chat_id) == "sim"
    assert sessions_seen == [(box.runtime.session_id,)]
    assert executor._client is None  # the executor's own client closed with the runtime
    assert cluster.client.status == "running"  # the user's did not
    assert cluster.client.get_events(executor.topic) == ()  # its batches left the scheduler


def test_use_dask_refuses_what_is_not_a_client(tmp_path: Path) -> None:
    with kernelish(tmp_path, cluster=None) as box:
        with pytest.raises(ExecutorUnavailable, match="takes a distributed.Client, got str"):
            use_dask("tcp://127.0.0.1:8786", runtime=box.runtime)
        assert box.runtime.executor.name == "local"


# The kernel.


def test_boonb_magic_shows_the_dask_executor_and_its_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    kernel = Kernel(tmp_path, env={"BOONB_DASK_ADDRESS": cluster.address})
    try:
        kernel.execute("%load_ext boonb")
        before = kernel.execute("%boonb")
        kernel.execute("%boonb config executor=dask")
        after = kernel.execute("%boonb")
    finally:
        kernel.stop()
    assert not after["error"], after
    assert "executor   local" in "".join(before["stdout"])
    shown = "".join(after["stdout"])
    assert f"executor   dask (2 workers at {cluster.address})" in shown, shown
    workers = sorted(cluster.worker_pids())
    assert f"workers    {', '.join(workers)}" in shown, shown
