from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from boonb.engine import Engine, EngineStopped


@pytest.fixture
def engine():
    e = Engine()
    yield e
    e.shutdown()


def test_coroutines_run_on_the_engine_thread_from_any_thread(engine: Engine) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.run(where()))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["boonb-engine"] * 4


def test_work_goes_on_while_the_caller_blocks(engine: Engine) -> None:
    ticks: list[int] = []

    async def tick() -> None:
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0.01)

    future = engine.submit(tick())
    time.sleep(0.2)  # the "cell" blocks on user code; the engine keeps going
    assert future.done() and ticks == [0, 1, 2, 3, 4]


def test_keyboard_interrupt_cancels_the_run_and_lets_it_clean_up(engine: Engine) -> None:
    cleaned = threading.Event()

    async def long_job() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    # Send SIGINT to this process shortly, as the kernel's stop button does. Python's own
    # handler turns it into KeyboardInterrupt, as in a kernel; a pytest-xdist worker has
    # replaced that handler, so the test puts it back for its duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            engine.run(long_job())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cleaned.is_set()  # run() re-raised only after the task had cleaned up


def test_shutdown_cancels_running_tasks_cleanly_and_refuses_new_work() -> None:
    engine = Engine()
    cleaned = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    engine.submit(forever())
    time.sleep(0.05)
    engine.shutdown()
    assert cleaned.is_set()
    assert not engine.running
    with pytest.raises(EngineStopped):
        engine.submit(asyncio.sleep(0))


def test_run_refuses_to_deadlock_on_the_engine_thread(engine: Engine) -> None:
    async def nested() -> None:
        engine.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="deadlock"):
        engine.run(nested())
