"""Resource limits of a sandbox worker, shared by the host and the worker (no pydantic here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    """What one workflow run may consume.

    Every worker runs exactly one script, so each limit applies to one run.
    """

    cpu_seconds: int = 60
    """RLIMIT_CPU: CPU seconds the script may use (on top of the worker's start-up); the
    soft limit sends SIGXCPU, the hard limit one second later SIGKILL."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS: the worker's whole address space, interpreter included."""
    open_files: int = 16
    """RLIMIT_NOFILE: the worker needs only its three inherited pipes."""
    file_size_bytes: int = 0
    """RLIMIT_FSIZE: no file may grow (SIGXFSZ)."""
    processes: int = 0
    """RLIMIT_NPROC: no new process or thread (not enforced for root; seccomp is)."""
    max_message_bytes: int = 8 << 20
    """Largest frame either side accepts; a bigger one kills the worker."""
    max_result_bytes: int = 1 << 20
    """Largest JSON result (UTF-8) a run may return."""
    max_log_bytes: int = 64 << 10
    """A log message longer than this is truncated."""
    recursion_limit: int = 400
    """Python frames a run may nest, the worker's own included (one per script call)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        return cls(**data)
