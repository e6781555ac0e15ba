"""Agents on Dask (issue 19): 500 workflow agents on this kernel and on a 2-worker cluster.

Run: .venv/bin/python -m benchmarks.bench_dask [N]
Figures are printed, never asserted. The simulator runs in its own process at 0.5 s
latency, with a rule that makes each agent call one tool and then answer (two turns).
The 500 agents are one workflow ``parallel`` (the full path: steps, traces, the store),
first on the local executor, then on a LocalCluster of two single-thread worker
processes (its start timed apart). For each: wall time, the kernel's main-thread stall
(how late a 10 ms sleep wakes), the engine loop's lag (the same, on the engine), the
kernel's CPU seconds, and the rows written; for Dask also the wire items replayed and the
engine time that took. Baseline, in the same process: the same 500 agents by a bare
``asyncio.gather``, recording nowhere. On a 2-CPU machine the gain is in kernel CPU, not
wall time: the workers share the two CPUs with the kernel and the simulator.

Measured here on 2026-11-30 (2 CPUs; another CI run had just ended, load ~3 at the start):

=====================  =======  ==========  =======================  ====================
500 agents, 2 turns    wall     kernel CPU  main-thread stall         engine-loop lag
=====================  =======  ==========  =======================  ====================
baseline (gather)      44.4 s   36.8 s      153 ms longest, p99 16   (not measured)
local executor         57.8 s   52.6 s      139 ms longest, p99 30   6.2 s longest, p99 2.9 s
dask, 2 workers        17.7 s    9.3 s      253 ms longest, p99 23   2.0 s longest, p99 101 ms
=====================  =======  ==========  =======================  ====================

All 500 answered on both executors, with the same rows (2,001 traces, 2,000 messages and
parts, 500 chats and sessions). The LocalCluster started in 2.3 s, the executor connected
(an actor per worker) in 0.08 s; the kernel replayed 15,000 wire items, 30 an agent, in
2.6 s of engine time (172 µs an item, parsing and writing included). An earlier run under a
load of 8-10 (a CI run alongside) took 15.6 s on Dask and 497 s locally, where the engine's
loop stalled for up to 39 s and 481 of the 500 local agents failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_background import MainThreadWatch
from boonb import config
from boonb.agent import Agent, ToolContext, tool
from boonb.agent.recorder import Recorder
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.providers import ChatClient, get_profile
from boonb.runtime import Runtime

N = 500
LATENCY_S = 0.5
SYSTEM = "You are a benchmark worker."


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.

    """
    return f"value of {key}"


SCRIPT = """
a = agent("worker", prompt={system!r}, tools=["lookup"], cache=False)
result = parallel([(a, f"job {{i}}") for i in range({n})])
"""


@contextlib.contextmanager
def simulator_process(root: Path, latency: float) -> Iterator[str]:
    """The simulator in a process of its own: its work does not count against the kernel."""
    rules = root / "rules.json"
    rules.write_text(
        json.dumps(
            [{"pattern": "job", "tool_calls": [{"name": "lookup", "arguments": {"key": "a"}}]}]
        )
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "boonb.sim", "--port", str(port), "--latency", str(latency)]
    process = subprocess.Popen([*command, "--rules", str(rules)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "serving at ...": it is up
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class EngineLag:
    """How late a 10 ms sleep on the engine's loop wakes up (the loop's own stalls)."""

    lags: list[float] = field(default_factory=list)
    stop: bool = False

    async def run(self) -> None:
        while not self.stop:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append(time.perf_counter() - start - 0.01)

    def report(self) -> str:
        ordered = sorted(self.lags) or [0.0]
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        return (
            f"longest {ordered[-1] * 1000:.0f} ms, p99 {p99:.0f} ms, "
            f"median {statistics.median(ordered) * 1000:.1f} ms"
        )


@dataclass
class Replayed:
    """Wire items the Dask executor's replay applied, and the engine time it took."""

    items: int = 0
    seconds: float = 0.0


def count_replay(executor: Any) -> Replayed:
    """Wrap the executor's replay to count what it applies (only the benchmark does this)."""
    seen = Replayed()
    feed = executor._replay.feed

    def counted(message: dict[str, Any]) -> None:
        start = time.perf_counter()
        feed(message)
        seen.seconds += time.perf_counter() - start
        seen.items += len(message.get("items", ()))

    executor._replay.feed = counted
    return seen


def rows_written(runtime: Runtime) -> str:
    store = runtime.store
    store.writer.flush()
    tables = ("tool_traces", "messages", "message_parts", "chats", "agent_sessions")
    with store.db.connection() as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    return ", ".join(f"{t} {n:,}" for t, n in counts.items())


def run_workflow(runtime: Runtime, n: int, label: str, replayed: Replayed | None) -> None:
    manager = runtime.workflows
    failures: Counter[str] = Counter()

    def failed(frame: Any) -> None:
        if frame.state == "failed":
            failures[(frame.error or "")[:120]] += 1

    runtime.bus.subscribe(failed, types={"workflow:step"})
    lag = EngineLag()
    runtime.engine.submit(lag.run())
    cpu = time.process_time()
    with MainThreadWatch().watching() as watch:
        start = time.perf_counter()
        run_id = manager.run_script(SCRIPT.format(system=SYSTEM, n=n), budget=10**9, timeout=3600)
        status = manager.wait(run_id, timeout=3600)
        wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    lag.stop = True
    done = sum(r is not None for r in status.result) if isinstance(status.result, list) else 0
    print(f"{label}: {n} workflow agents, two turns each")
    print(f"  {status.state}: {done}/{n} answered in {wall:.2f} s ({n / wall:.1f} agents/s)")
    print(f"  kernel CPU: {cpu:.2f} s ({cpu / wall * 100:.0f}% of one core)")
    print(f"  main-thread stall: {watch.report()}")
    print(f"  engine-loop lag: {lag.report()}")
    if replayed is not None:
        per_item = replayed.seconds / max(replayed.items, 1) * 1e6
        print(
            f"  replayed {replayed.items:,} items ({replayed.items / wall:,.0f}/s), "
            f"{replayed.seconds:.2f} s of engine time ({per_item:.0f} µs/item)"
        )
    print(f"  rows: {rows_written(runtime)}")
    for error, count in failures.most_common(3):
        print(f"  {count} agents failed: {error}")


def settings(project: Path, base_url: str) -> config.Settings:
    project.mkdir(parents=True, exist_ok=True)
    return config.Settings(project=project, provider="sim", base_url=base_url)


def bench_local(root: Path, base_url: str, n: int) -> None:
    runtime = Runtime(settings(root, base_url))
    runtime.tools.register(lookup)
    try:
        run_workflow(runtime, n, "local executor", None)
    finally:
        runtime.shutdown()


def bench_dask(root: Path, base_url: str, n: int) -> None:
    import logging

    from distributed import LocalCluster

    from boonb.executors.dask import DaskExecutor

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=logging.WARNING,
        local_directory=str(root / "dask-space"),
    )
    started = time.perf_counter() - start
    runtime = Runtime(settings(root, base_url))
    runtime.tools.register(lookup)
    try:
        start = time.perf_counter()
        executor = DaskExecutor.connect(
            runtime.agent_factory, engine=runtime.engine, address=cluster.scheduler_address
        )
        executor.wait_ready()
        connected = time.perf_counter() - start
        runtime.use_executor(executor)
        print(
            f"LocalCluster of 2 worker processes: started in {started:.2f} s; "
            f"the executor connected (an actor per worker) in {connected:.2f} s"
        )
        run_workflow(runtime, n, "dask executor (2 workers)", count_replay(executor))
    finally:
        runtime.shutdown()
        start = time.perf_counter()
        cluster.close()
        print(f"  cluster closed in {time.perf_counter() - start:.2f} s")


def bench_gather_baseline(base_url: str, root: Path, n: int) -> None:
    """The same agents by a bare asyncio.gather on one engine: no workflow, no store."""
    engine = Engine()
    profile = get_profile("sim").with_overrides(base_url=base_url)
    client = ChatClient(profile)
    context = ToolContext(project_root=root)

    def agent() -> Agent:
        recorder = Recorder(Bus(), lambda row: None, session_id=uuid.uuid4(), chat_id=uuid.uuid4())
        return Agent(
            client, recorder=recorder, tools=[lookup], context=context, system_prompt=SYSTEM
        )

    async def all_agents() -> list[Any]:
        return await asyncio.gather(*(agent().run(f"job {i}") for i in range(n)))

    cpu = time.process_time()
    with MainThreadWatch().watching() as watch:
        start = time.perf_counter()
        results = engine.run(all_agents())
        wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    done = sum(r.stop_reason == "final" for r in results)
    turns = statistics.mean(r.stats.turns for r in results)
    print(f"baseline: {n} agents by asyncio.gather in this process, recording nowhere")
    print(f"  {done}/{n} final ({turns:.1f} turns each) in {wall:.2f} s; kernel CPU {cpu:.2f} s")
    print(f"  main-thread stall: {watch.report()}")
    engine.shutdown()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    threading.current_thread().name = "kernel-main"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config.reset(settings(root / "base", "http://127.0.0.1:1/v1"))
        with simulator_process(root, LATENCY_S) as base_url:
            bench_gather_baseline(base_url, root / "base", n)
            bench_local(root / "local", base_url, n)
            bench_dask(root / "dask", base_url, n)


if __name__ == "__main__":
    main()
