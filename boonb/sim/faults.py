"""Injectable failures, so clients' retry, timeout and stream-error paths can be tested."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["rate_limit", "server_error", "timeout", "broken_stream", "malformed_stream"]


@dataclass(frozen=True)
class Fault:
    """One failure the server plays instead of (or in the middle of) a normal answer.

    Build faults with the constructors; each documents what the client sees.
    """

    kind: FaultKind
    retry_after: float = 1.0
    status: int = 500
    seconds: float = 30.0
    after_chunks: int = 2

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0) -> Fault:
        """HTTP 429 with ``Retry-After`` (seconds) and ``retry-after-ms`` headers."""
        if retry_after < 0:
            raise ValueError("retry_after must be >= 0 seconds")
        return cls("rate_limit", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """Answer with an HTTP 5xx and an OpenAI-style error body."""
        if not 500 <= status <= 599:
            raise ValueError(f"server_error status must be 5xx, got {status}")
        return cls("server_error", status=status)

    @classmethod
    def timeout(cls, seconds: float = 30.0) -> Fault:
        """Wait ``seconds`` before answering normally, so the client's timeout fires first."""
        return cls("timeout", seconds=seconds)

    @classmethod
    def broken_stream(cls, after_chunks: int = 2) -> Fault:
        """Drop the connection after ``after_chunks`` SSE events, without ``[DONE]``.

        A non-streaming request gets its headers and half of its JSON body, then the drop.
        """
        if after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        return cls("broken_stream", after_chunks=after_chunks)

    @classmethod
    def malformed_stream(cls) -> Fault:
        """Put a ``data:`` line holding invalid JSON after the first chunk of a stream.

        The stream then carries on to ``[DONE]``. A non-streaming request gets a 200 whose
        body is truncated JSON.
        """
        return cls("malformed_stream")


class FaultQueue:
    """Faults waiting for the next chat requests, first in first out; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def push(self, fault: Fault, times: int = 1) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._queue.extend([fault] * times)

    def pop(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)
