"""Sandbox benchmarks: start latency of a warm pool vs a cold interpreter; API round trip.

Run: .venv/bin/python -m benchmarks.bench_sandbox
Figures are printed, never asserted. Targets (issue 6): from ``run()`` to the script's first
statement at most 20 ms with a warm pool; one API call worker <-> host under 1 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

from pydantic import JsonValue

from boonb.workflow.sandbox import ApiCall, SandboxPool

N_START = 20
N_COLD = 10
N_CALLS = 5_000


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return f"median {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms   n={len(values)}"


async def first_statement_latency(pool: SandboxPool, *, settle: float) -> float:
    """From calling run() to the host receiving the script's first statement (a log)."""
    first: list[float] = []

    async def handler(call: ApiCall) -> JsonValue:
        if call.op == "log" and not first:
            first.append(time.perf_counter())
        return None

    await asyncio.sleep(settle)  # let the replacement worker finish booting
    started = time.perf_counter()
    result = await pool.run('log("first")\nresult = 1', args={}, handler=handler)
    assert result.status == "completed", result
    return (first[0] - started) * 1000


async def round_trip_us(pool: SandboxPool, calls: int) -> tuple[float, float]:
    async def handler(call: ApiCall) -> JsonValue:
        return "ok" if call.op == "agent.run" else None

    async def timed(source: str) -> float:
        await asyncio.sleep(0.5)
        result = await pool.run(source, args={}, handler=handler, step_budget=10**7)
        assert result.status == "completed", result
        return result.duration_ms

    base = await timed(f"for i in range({calls}):\n    pass")
    runs = await timed(f'a = agent("a", prompt="p")\nfor i in range({calls}):\n    a.run(i)')
    logs = await timed(f"for i in range({calls}):\n    log(i)")
    return (runs - base) * 1000 / calls, (logs - base) * 1000 / calls


async def main() -> None:
    cold_python = []
    for _ in range(N_COLD):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        cold_python.append((time.perf_counter() - started) * 1000)

    cold_pool = []
    for _ in range(3):
        pool = SandboxPool(size=1)
        cold_pool.append(await first_statement_latency(pool, settle=0))
        await pool.aclose()

    pool = SandboxPool(size=2)
    pool.start()
    warm = [await first_statement_latency(pool, settle=0.6) for _ in range(N_START)]
    agent_run, log = await round_trip_us(pool, N_CALLS)
    await pool.aclose()

    print("run() -> first statement")
    print(f"  warm pool                  {_ms(warm)}   (target <= 20 ms)")
    print(f"  cold sandbox (empty pool)  {_ms(cold_pool)}")
    print(f"  cold `python -c pass`      {_ms(cold_python)}")
    print("API round trip worker <-> host (per call, over", N_CALLS, "calls)")
    print(f"  agent.run (call + reply)   {agent_run:7.1f} µs   (target < 1000 µs)")
    print(f"  log (fire-and-forget)      {log:7.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
