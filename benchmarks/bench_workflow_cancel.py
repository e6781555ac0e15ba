"""How long a workflow run takes to end ``cancelled`` once cancelled, its agents' traces closed.

Run: .venv/bin/python -m benchmarks.bench_workflow_cancel
Figures are printed, never asserted. Target (issue 15): a cancelled run ends within 2 s.

Each round starts a run of three parallel agents whose model calls take 30 s on the
simulator, waits until all three are in their model calls, cancels it, and times the
cancel until the run reads ``cancelled`` and until every trace row of the run is closed
(committed, outcome ``cancelled``). Baseline, in the same process: cancelling a plain
asyncio task that waits on the same simulator over httpx, until the task has ended.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from boonb import config
from boonb.runtime import Runtime
from boonb.sim import Rule

ROUNDS = 5
SCRIPT = 'both = parallel([(agent("a", prompt="p"), "slow " + str(i)) for i in range(3)])'


def _until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's run did not get there")
        time.sleep(0.002)


def _closed(runtime: Runtime, run_id: object) -> bool:
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        open_rows = con.execute(
            "SELECT count(*) FILTER (WHERE outcome <> 'cancelled' OR finished_at IS NULL), "
            "count(*) FILTER (WHERE kind = 'model') FROM tool_traces WHERE root_id = ?",
            [run_id],
        ).fetchone()
    assert open_rows is not None
    return open_rows[0] == 0 and open_rows[1] == 3


def _cancel_rounds(runtime: Runtime) -> tuple[list[float], list[float]]:
    manager, sim = runtime.workflows, runtime.simulator()
    to_state, to_closed = [], []
    for _ in range(ROUNDS):
        wanted = len(sim.requests) + 3  # all three agents in their model calls
        run_id = manager.run_script(SCRIPT, timeout=120)
        _until(lambda wanted=wanted: len(sim.requests) >= wanted)
        began = time.perf_counter()
        manager.cancel(run_id)
        _until(lambda run_id=run_id: manager.status(run_id).state == "cancelled")
        to_state.append((time.perf_counter() - began) * 1000)
        _until(lambda run_id=run_id: _closed(runtime, run_id))
        to_closed.append((time.perf_counter() - began) * 1000)
    return to_state, to_closed


async def _baseline_round(base_url: str) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"model": "sim-chat", "messages": [{"role": "user", "content": "slow"}]}
        task = asyncio.create_task(client.post(f"{base_url}/chat/completions", json=body))
        await asyncio.sleep(0.2)  # the request is on the wire (a baseline, not a test)
        began = time.perf_counter()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return (time.perf_counter() - began) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config.update(project=Path(tmp), db_path=Path(tmp) / "bench.duckdb")
        runtime = Runtime()
        try:
            sim = runtime.simulator()
            sim.add_rule(Rule("slow", reply="finally", latency=30))
            to_state, to_closed = _cancel_rounds(runtime)
            baseline = [asyncio.run(_baseline_round(sim.base_url)) for _ in range(ROUNDS)]
        finally:
            runtime.shutdown()
    print(f"cancel of a 3-agent run, agents in 30 s model calls (median / max of {ROUNDS}):")
    print(f"  cancel -> run reads cancelled:           {statistics.median(to_state):7.1f} ms / "
          f"{max(to_state):7.1f} ms (target under 2,000 ms)")  # fmt: skip
    print(f"  cancel -> every trace closed, committed: {statistics.median(to_closed):7.1f} ms / "
          f"{max(to_closed):7.1f} ms")  # fmt: skip
    print(f"  baseline: cancel an httpx request task:  {statistics.median(baseline):7.1f} ms / "
          f"{max(baseline):7.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
