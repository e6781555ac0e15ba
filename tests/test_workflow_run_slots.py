"""Workflow run slots: first come first served, under a limit read at each start and end."""

from __future__ import annotations

import asyncio

from boonb.workflow.run_slots import RunSlots


class Runs:
    """Runs that take a slot and hold it until the test lets them end."""

    def __init__(self, slots: RunSlots) -> None:
        self.slots = slots
        self.started: list[str] = []
        self._ends: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str) -> None:
        self._ends[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._run(name))

    async def _run(self, name: str) -> None:
        async with self.slots.slot():
            self.started.append(name)
            await self._ends[name].wait()

    async def end(self, name: str) -> None:
        self._ends[name].set()
        await self.tasks[name]


async def settle() -> None:
    """Let every task that can run go as far as it can."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_waiting_runs_start_in_the_order_they_came_as_slots_free() -> None:
    async def scenario() -> list[str]:
        runs = Runs(RunSlots(lambda: 2))
        for name in "abcde":
            runs.start(name)
        await settle()
        seen = [",".join(runs.started)]
        await runs.end("b")
        await settle()
        seen.append(",".join(runs.started))
        await runs.end("a")
        await settle()
        seen.append(",".join(runs.started))
        return seen

    assert asyncio.run(scenario()) == ["a,b", "a,b,c", "a,b,c,d"]


def test_a_larger_limit_starts_waiting_runs_at_the_next_start_and_a_smaller_one_at_ends() -> None:
    limit = [1]

    async def scenario() -> list[str]:
        slots = RunSlots(lambda: limit[0])
        runs = Runs(slots)
        runs.start("a")
        runs.start("b")
        await settle()
        seen = [",".join(sorted(runs.started))]
        limit[0] = 3  # %boonb config workflow_max_concurrent=3
        runs.start("c")  # b and c get a slot at the same moment
        await settle()
        seen.append(",".join(sorted(runs.started)))
        limit[0] = 1
        runs.start("d")
        await runs.end("a")
        await runs.end("b")
        await settle()
        seen.append(",".join(sorted(runs.started)))  # c still holds the only slot
        await runs.end("c")
        await settle()
        seen.append(",".join(sorted(runs.started)))
        assert slots.busy == 1
        return seen

    assert asyncio.run(scenario()) == ["a", "a,b,c", "a,b,c", "a,b,c,d"]


def test_a_run_cancelled_while_waiting_or_as_its_slot_came_leaves_no_slot_taken() -> None:
    async def scenario() -> tuple[list[str], int]:
        slots = RunSlots(lambda: 1)
        runs = Runs(slots)
        held = slots.slot()
        await held.__aenter__()
        for name in "bcd":
            runs.start(name)
        await settle()
        runs.tasks["b"].cancel()  # while it waits
        await held.__aexit__(None, None, None)  # the slot goes to c, past b ...
        runs.tasks["c"].cancel()  # ... and c is cancelled before it could run
        await settle()
        await runs.end("d")
        return runs.started, slots.busy

    assert asyncio.run(scenario()) == (["d"], 0)
