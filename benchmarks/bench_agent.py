"""Agent benchmarks: framework overhead against a raw httpx loop, 200 agents at once, and
the cache telemetry of a long chat.

Run: .venv/bin/python -m benchmarks.bench_agent
Figures are printed, never asserted. Targets (issue 3): one turn with two tool calls
within 1.5x of a hand-written httpx loop doing the same requests; 200 concurrent
agents with the kernel's main thread staying responsive. Issue 12: what waiting for the
commit at the end of a cell adds to that turn, side by side with the overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from boonb.agent import Agent, ToolContext, tool
from boonb.agent.cache import CacheTracker
from boonb.agent.recorder import Recorder
from boonb.api import committed
from boonb.bus import Bus
from boonb.engine import Engine
from boonb.providers import ChatClient, get_profile
from boonb.sim import Rule, SimServer
from boonb.store import STORED_FRAME_TYPES, Store

RUNS = 60


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


RULE = Rule(
    "look",
    tool_calls=[
        {"name": "lookup", "arguments": {"key": "a"}},
        {"name": "lookup", "arguments": {"key": "b"}},
    ],
)
SYSTEM = "You are a benchmark."


async def raw_httpx_turn(http: httpx.AsyncClient, prompt: str) -> None:
    """The same exchange by hand: stream, gather tool calls, run them, stream again."""
    messages: list[dict] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": prompt},
    ]
    tools = [lookup.openai_schema()]
    while True:
        body = {
            "model": "sim-chat",
            "messages": messages,
            "tools": tools,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        content, calls = "", {}
        async with http.stream("POST", "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices", []):
                    delta = choice["delta"]
                    content += delta.get("content") or ""
                    for call in delta.get("tool_calls") or []:
                        slot = calls.setdefault(call["index"], {"id": "", "name": "", "args": ""})
                        slot["id"] = call.get("id") or slot["id"]
                        fn = call.get("function", {})
                        slot["name"] = fn.get("name") or slot["name"]
                        slot["args"] += fn.get("arguments") or ""
        if not calls:
            return
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["args"]},
                    }
                    for c in calls.values()
                ],
            }
        )
        for c in calls.values():
            result = lookup.function(**json.loads(c["args"]))
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})


def make_agent(store: Store, bus: Bus, client: ChatClient, root: Path) -> Agent:
    recorder = Recorder(bus, store.writer.enqueue, session_id=uuid.uuid4(), chat_id=uuid.uuid4())
    return Agent(
        client,
        recorder=recorder,
        tools=[lookup],
        system_prompt=SYSTEM,
        context=ToolContext(project_root=root),
    )


def bench_overhead(sim: SimServer, store: Store, bus: Bus, root: Path) -> None:
    engine = Engine()
    profile = get_profile("sim").with_overrides(base_url=sim.base_url)
    client = ChatClient(profile)
    http = httpx.AsyncClient(base_url=sim.base_url)
    boonb_times, cell_times, raw_times = [], [], []

    async def boonb_once() -> float:
        agent = make_agent(store, bus, client, root)
        start = time.perf_counter()
        await agent.run("look it up")
        return time.perf_counter() - start

    async def cell_once() -> float:
        """As a %%agent cell runs it: the same turn, then wait until its rows are committed."""
        agent = make_agent(store, bus, client, root)
        start = time.perf_counter()
        await agent.run("look it up")
        await committed(store.writer, timeout=30)
        return time.perf_counter() - start

    async def raw_once() -> float:
        start = time.perf_counter()
        await raw_httpx_turn(http, "look it up")
        return time.perf_counter() - start

    for _ in range(5):  # warm up connections and caches
        engine.run(boonb_once())
        engine.run(cell_once())
        engine.run(raw_once())
    for _ in range(RUNS):  # interleaved, so drift hits all three alike
        boonb_times.append(engine.run(boonb_once()))
        cell_times.append(engine.run(cell_once()))
        raw_times.append(engine.run(raw_once()))
    engine.run(http.aclose())
    engine.shutdown()
    b, r = statistics.median(boonb_times) * 1000, statistics.median(raw_times) * 1000
    c = statistics.median(cell_times) * 1000
    print(
        f"one turn with two tool calls + final answer, simulator at zero latency "
        f"(median of {RUNS}):"
    )
    print(f"  boonb agent (traced, stored): {b:6.2f} ms")
    print(f"  raw httpx loop:               {r:6.2f} ms")
    print(f"  ratio: {b / r:.2f}x (target <= 1.5x)")
    print(f"  as a cell (run, then its rows committed): {c:6.2f} ms")
    print(f"  the cell-end commit adds: {c - b:+.2f} ms ({c / r:.2f}x raw httpx)")


@contextlib.contextmanager
def simulator_process(root: Path, latency: float) -> Iterator[str]:
    """The simulator in its own process, as a real provider would be: it does not share
    this process's GIL with the agents."""
    rules = root / "rules.json"
    rules.write_text(json.dumps([{"pattern": RULE.pattern, "tool_calls": RULE.tool_calls}]))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boonb.sim",
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--rules",
            str(rules),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the "serving at" line: it is up
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


def bench_many_agents(store: Store, bus: Bus, root: Path, n: int = 200) -> None:
    engine = Engine()
    with simulator_process(root, latency=0.2) as base_url:
        _many_agents(engine, base_url, store, bus, root, n)
    engine.shutdown()


def _many_agents(engine: Engine, base_url: str, store: Store, bus: Bus, root: Path, n: int) -> None:
    profile = get_profile("sim").with_overrides(base_url=base_url)
    client = ChatClient(profile, timeout=120)
    stalls: list[float] = []
    stop = threading.Event()

    def watch_main_thread() -> None:
        # Stand-in for the kernel's main thread: how late does a 10 ms sleep wake up?
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(0.01)
            stalls.append(time.perf_counter() - start - 0.01)

    async def all_agents() -> list:
        agents = [make_agent(store, bus, client, root) for _ in range(n)]
        return await asyncio.gather(*(a.run("look it up") for a in agents))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    watcher = threading.Thread(target=watch_main_thread)
    watcher.start()
    start = time.perf_counter()
    results = engine.run(all_agents())
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    store.writer.flush()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ok = sum(r.stop_reason == "final" for r in results)
    print(
        f"{n} agents at once (2 model calls + 2 tool calls each; simulator in its own "
        "process, latency 0.2 s):"
    )
    print(f"  wall time {wall:.2f} s, {ok}/{n} finished, {4 * n} traces stored")
    print(f"  peak RSS {rss_after / 1024:.0f} MiB (was {rss_before / 1024:.0f} MiB before)")
    print(
        f"  main-thread stall: longest {max(stalls) * 1000:.1f} ms, "
        f"p99 {sorted(stalls)[int(len(stalls) * 0.99)] * 1000:.1f} ms"
    )


def bench_cache_telemetry(messages: int = 400) -> None:
    """Engine-thread time to measure one model call's prompt segments late in a long chat.

    A tracker that has seen the chat's earlier calls, against a fresh one that must
    measure every message (as the tracker did before it remembered them).
    """
    text = "Compare the two quarterly tables, then explain the gap in revenue; " * 30
    chat = [{"role": "system", "content": "You are a careful data analyst. " * 40}]
    tracker = CacheTracker()
    for i in range(messages):
        chat.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {text}"})
        if i % 2:
            tracker.segments(chat, None, input_tokens=1000, cache_tokens=500)
    size = sum(len(json.dumps(m)) for m in chat) / 1e6

    def timed(measure: CacheTracker) -> float:
        start = time.perf_counter()
        measure.segments(chat, None, input_tokens=1000, cache_tokens=500)
        return (time.perf_counter() - start) * 1000

    remembered, fresh = [], []
    for _ in range(20):
        chat.append({"role": "user", "content": f"and one more question {len(chat)}"})
        remembered.append(timed(tracker))
        fresh.append(timed(CacheTracker()))
    print(f"cache telemetry of one model call, chat of {len(chat)} messages ({size:.1f} MB):")
    print(f"  tracker that has seen the chat:  median {statistics.median(remembered):6.2f} ms")
    print(f"  fresh tracker, every message:    median {statistics.median(fresh):6.2f} ms")


def main() -> None:
    bench_cache_telemetry()
    with tempfile.TemporaryDirectory() as tmp, SimServer(rules=[RULE]) as sim:
        root = Path(tmp)
        store = Store(root / "bench.duckdb")
        bus = Bus()
        bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
        bench_overhead(sim, store, bus, root)
        bench_many_agents(store, bus, root)
        store.close()


if __name__ == "__main__":
    main()
