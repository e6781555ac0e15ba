"""Background subagents: 1,000 queued at once, 50 running at a time (issue 14).

Run: .venv/bin/python -m benchmarks.bench_background
Figures are printed, never asserted. The simulator runs in its own process at 0.2 s
latency, so its work does not count against this one. Measured: throughput, what queueing
1,000 costs the caller, and the longest stall of the main thread (a thread timing how late
its own 10 ms sleeps wake up; target under 100 ms). Baseline, in the same process: the
same 1,000 agents built by the same factory, run by ``asyncio.gather`` behind a semaphore
of 50, with no task rows, frames or worker.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.bench_agent import simulator_process
from boonb import config
from boonb.agent import Agent, default_registry
from boonb.agent.factory import AgentFactory
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.sessions import SessionSaver
from boonb.background import Tasks
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.providers import ChatClient
from boonb.store import STORED_FRAME_TYPES, Store

N = 1_000
CONCURRENT = 50
LATENCY_S = 0.2


class MainThreadWatch:
    """How late a 10 ms sleep wakes up, sampled until stopped (the main thread's stalls)."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(0.01)
            self.stalls.append(time.perf_counter() - start - 0.01)

    @contextmanager
    def watching(self) -> Iterator[MainThreadWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    def report(self) -> str:
        ordered = sorted(self.stalls)
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        return f"longest {ordered[-1] * 1000:.1f} ms, p99 {p99:.1f} ms, median " + (
            f"{statistics.median(ordered) * 1000:.2f} ms"
        )


def _parts(root: Path, base_url: str) -> tuple[Engine, Bus, Store, AgentFactory]:
    store = Store(root / "bench.duckdb")
    bus = Bus()
    bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
    engine = Engine()
    clients: dict[str, ChatClient] = {}

    def provider() -> ProviderChoice:
        return choose_provider(config.get_settings(), sim_base_url=base_url)

    def client(choice: ProviderChoice) -> ChatClient:
        # One client, as the runtime keeps one per provider: its connections are pooled.
        if "c" not in clients:
            clients["c"] = ChatClient(choice.profile, model=choice.model, timeout=300)
        return clients["c"]

    def keep(agent: Agent, saver: SessionSaver) -> None:
        pass

    factory = AgentFactory(
        bus=bus,
        store=lambda: store,
        settings=config.get_settings,
        provider=provider,
        client=client,
        tools=default_registry(),
        session_id=uuid.uuid4(),
        register=keep,
    )
    return engine, bus, store, factory


def bench_background(root: Path, base_url: str) -> None:
    engine, bus, store, factory = _parts(root, base_url)
    tasks = Tasks(
        engine=engine,
        bus=bus,
        store=lambda: store,
        settings=config.get_settings,
        agents=factory,
        tools=factory.tools,
        session_id=factory.session_id,
    )
    frames = 0

    def count(_: Any) -> None:
        nonlocal frames
        frames += 1

    bus.subscribe(count, types=("task:update",))
    most_running = 0
    running: set[uuid.UUID] = set()

    def track(frame: Any) -> None:
        nonlocal most_running
        (running.add if frame.state == "running" else running.discard)(frame.task_id)
        most_running = max(most_running, len(running))

    bus.subscribe(track, types=("task:update",))
    tasks.ensure_worker()
    with MainThreadWatch().watching() as watch:
        start = time.perf_counter()
        ids = [tasks.spawn(f"background job {n}", tools=[]).task_id for n in range(N)]
        queued = time.perf_counter() - start
        ended = [tasks.wait(task_id, 600) for task_id in ids]
        wall = time.perf_counter() - start
    store.writer.flush()
    listed_at = time.perf_counter()
    listed = tasks.list(limit=N)
    list_ms = (time.perf_counter() - listed_at) * 1000
    completed = sum(u.state == "completed" for u in ended)
    print(
        f"background: {N} subagents queued at once, BACKGROUND_MAX_CONCURRENT={CONCURRENT}, "
        f"simulator latency {LATENCY_S} s (one model call each)"
    )
    print(f"  {completed}/{N} completed in {wall:.2f} s: {N / wall:.1f} tasks/s")
    print(f"  queueing all {N}: {queued * 1000:.0f} ms ({queued / N * 1e6:.0f} µs per spawn)")
    print(f"  most running at once (from the frames): {most_running}; {frames:,} task frames")
    print(f"  tasks.list() of {len(listed)} tasks: {list_ms:.0f} ms")
    print(f"  main-thread stall: {watch.report()}")
    tasks.close()
    engine.shutdown()
    store.close()


def bench_gather_baseline(root: Path, base_url: str) -> None:
    engine, _, store, factory = _parts(root, base_url)

    async def run_all(build: Callable[[], Agent]) -> list[Any]:
        slots = asyncio.Semaphore(CONCURRENT)

        async def one(n: int) -> Any:
            async with slots:
                return await build().run(f"background job {n}")

        return await asyncio.gather(*(one(n) for n in range(N)))

    with MainThreadWatch().watching() as watch:
        start = time.perf_counter()
        results = engine.run(run_all(lambda: factory.new_agent(tools=[])))
        wall = time.perf_counter() - start
    store.writer.flush()
    done = sum(r.stop_reason == "final" for r in results)
    print(f"baseline: the same {N} agents by asyncio.gather, {CONCURRENT} at a time")
    print(f"  {done}/{N} finished in {wall:.2f} s: {N / wall:.1f} agents/s")
    print(f"  main-thread stall: {watch.report()}")
    engine.shutdown()
    store.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "project").mkdir()
        config.reset(
            config.Settings(project=root / "project", background_max_concurrent=CONCURRENT)
        )
        with simulator_process(root, latency=LATENCY_S) as base_url:
            (root / "a").mkdir()
            (root / "b").mkdir()
            bench_gather_baseline(root / "a", base_url)
            bench_background(root / "b", base_url)


if __name__ == "__main__":
    main()
