"""Wait for engine work on the cell's thread, printing its frames as they arrive.

Output printed from the engine thread could land in another cell, so frames are
queued by a bus subscriber and printed here, by the thread running the cell.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from typing import TypeVar

from boonb.engine import EngineFuture
from boonb.frames import Frame
from boonb.runtime import get_runtime

T = TypeVar("T")


def follow(
    future: EngineFuture[T],
    *,
    types: Iterable[str],
    accept: Callable[[Frame], bool],
    render: Callable[[Frame], str | None],
) -> T:
    """Wait for ``future``, printing ``render(frame)`` for each accepted frame, in order.

    The kernel's stop button cancels the work (see ``Engine.wait``) and raises
    ``KeyboardInterrupt`` once it has wound down.
    """
    frames: queue.SimpleQueue[Frame] = queue.SimpleQueue()

    def collect(frame: Frame) -> None:
        if accept(frame):
            frames.put(frame)

    def show() -> None:
        text = []
        while True:
            try:
                shown = render(frames.get_nowait())
            except queue.Empty:
                break
            if shown:
                text.append(shown)
        if text:
            print("".join(text), end="", flush=True)

    runtime = get_runtime()
    unsubscribe = runtime.bus.subscribe(collect, types=types)
    try:
        return runtime.engine.wait(future, on_tick=show)
    finally:
        unsubscribe()
        show()
