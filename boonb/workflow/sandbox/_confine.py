"""Confinement of a worker after start-up: resource limits, then a seccomp allow-list.

The seccomp filter's default action is EPERM: a system call that is not allowed fails, so
code that got past RestrictedPython sees a PermissionError instead of a file, socket or
process (and the run ends with a structured result). EPERM rather than KILL keeps the
interpreter alive to report what happened; nothing it could retry is allowed either way.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Iterable

from ._limits import Limits

try:  # pyseccomp loads libseccomp through ctypes; absent outside Linux.
    import pyseccomp as _seccomp
except (ImportError, OSError) as exc:  # pragma: no cover - depends on the platform
    _seccomp = None
    _SECCOMP_IMPORT_ERROR: str | None = f"libseccomp unavailable: {exc}"
else:
    _SECCOMP_IMPORT_ERROR = None

# What CPython needs to keep running a script that has no file, socket or process access:
# memory management, locks, clocks, signals it handles itself, and exit. read and write
# are added separately, restricted to the worker's pipe descriptors.
ALLOWED_SYSCALLS: tuple[str, ...] = (
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    "futex", "sched_yield", "sched_getaffinity",
    "clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "getpid", "gettid", "getrandom", "getrusage",
    "fstat", "lseek", "close",
    "exit", "exit_group",
)  # fmt: skip


def apply_rlimits(limits: Limits) -> None:
    """Set every limit soft = hard, so the script cannot raise them again."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + 1 + limits.cpu_seconds
    # SIGXCPU at the soft limit; SIGKILL one second later if the signal is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def install_seccomp(*, read_fds: Iterable[int], write_fds: Iterable[int]) -> str | None:
    """Load the filter; returns None when it is active, else why it is not."""
    if _seccomp is None:
        return _SECCOMP_IMPORT_ERROR
    try:
        seccomp_filter = _seccomp.SyscallFilter(_seccomp.ERRNO(errno.EPERM))
        for name in ALLOWED_SYSCALLS:
            try:
                seccomp_filter.add_rule(_seccomp.ALLOW, name)
            except (OSError, ValueError):
                continue  # not a system call on this architecture
        # Reading one's own limits is harmless; setting them (new_limit != NULL) is not.
        seccomp_filter.add_rule(
            _seccomp.ALLOW,
            "prlimit64",
            _seccomp.Arg(0, _seccomp.EQ, 0),
            _seccomp.Arg(2, _seccomp.EQ, 0),
        )
        for fd in read_fds:
            seccomp_filter.add_rule(_seccomp.ALLOW, "read", _seccomp.Arg(0, _seccomp.EQ, fd))
        for fd in write_fds:
            seccomp_filter.add_rule(_seccomp.ALLOW, "write", _seccomp.Arg(0, _seccomp.EQ, fd))
        seccomp_filter.load()
    except OSError as exc:  # pragma: no cover - kernel without seccomp
        return f"seccomp filter could not be loaded: {exc}"
    return None
