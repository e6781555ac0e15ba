"""The host side: a warm pool of single-use worker processes and the run conversation.

Why ``subprocess`` with our own pipe protocol rather than ``multiprocessing``: a worker is
a fresh interpreter (no fork of the kernel, whose threads and DuckDB handles must not be
duplicated), gets a scrubbed environment, imports only the sandbox's worker modules, and
speaks length-prefixed JSON, so the host never unpickles anything a possibly compromised
worker sends. Each worker runs exactly one script and exits: no state survives between
runs and the CPU limit is per run. The pool keeps ``size`` booted workers waiting (the
ready frame sits in the pipe) and starts a replacement as soon as one is taken.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import JsonValue, ValidationError

from boonb.errors import SandboxError

from . import _protocol
from ._limits import Limits
from ._models import (
    API_CALL,
    JSON_VALUE,
    WORKER_MESSAGE,
    ApiCall,
    CallMessage,
    DoneMessage,
    ReadyMessage,
    SandboxResult,
)

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()

Handler = Callable[[ApiCall], Awaitable[JsonValue]]

_SANDBOX_DIR = Path(__file__).resolve().parent
# Registers the parent packages as bare namespaces so importing the worker module does not
# run boonb's __init__ files (and pull in pydantic, DuckDB, ...), then hands over.
BOOTSTRAP = """\
import sys, types
for name, path in (("boonb", sys.argv[1]), ("boonb.workflow", sys.argv[2]),
                   ("boonb.workflow.sandbox", sys.argv[3])):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from boonb.workflow.sandbox._worker import main
main(sys.argv[4:])
"""
# Only these variables reach a worker: API keys and the like stay in the kernel.
_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH")

_EXIT_SIGNALS = {
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGKILL: "killed (CPU hard limit or out of memory)",
    signal.SIGSYS: "killed by the seccomp filter",
    signal.SIGSEGV: "crashed (segmentation fault)",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGABRT: "aborted",
}


class WorkerGone(SandboxError):
    """The worker closed its pipe or sent something outside the protocol."""


class WorkerClosedPipe(WorkerGone):
    """The worker's end of the pipe closed: it exited, so its exit status tells why."""

    def __init__(self) -> None:
        super().__init__("the worker closed its pipe")


class _Worker:
    """One worker process and the host end of its pipes (non-blocking, loop-driven)."""

    def __init__(self, limits: Limits, *, allow_raw: bool) -> None:
        self.limits = limits
        stderr = None if os.environ.get("BOONB_SANDBOX_STDERR") else subprocess.DEVNULL
        argv = [
            sys.executable, "-I", "-c", BOOTSTRAP,
            str(_SANDBOX_DIR.parent.parent), str(_SANDBOX_DIR.parent), str(_SANDBOX_DIR),
            json.dumps(limits.to_json()), "raw" if allow_raw else "policy",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={key: os.environ[key] for key in _ENV_KEPT if key in os.environ},
            cwd="/",
            start_new_session=True,  # the kernel's SIGINT is not the worker's
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._write_fd = self.process.stdin.fileno()
        self._read_fd = self.process.stdout.fileno()
        os.set_blocking(self._write_fd, False)
        os.set_blocking(self._read_fd, False)
        self._buffer = bytearray()
        self.ready: ReadyMessage | None = None

    async def _wait_fd(self, fd: int, *, write: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        if write:
            loop.add_writer(fd, wake)
        else:
            loop.add_reader(fd, wake)
        try:
            await waiter
        finally:
            (loop.remove_writer if write else loop.remove_reader)(fd)

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            try:
                chunk = os.read(self._read_fd, 1 << 16)
            except BlockingIOError:
                await self._wait_fd(self._read_fd, write=False)
                continue
            if not chunk:
                raise WorkerClosedPipe()
            self._buffer += chunk

    async def receive(self) -> dict[str, Any]:
        await self._fill(_protocol.HEADER.size)
        (size,) = _protocol.HEADER.unpack_from(self._buffer)
        if size > self.limits.max_message_bytes:
            raise WorkerGone(
                f"the worker sent a {size}-byte message, over the "
                f"{self.limits.max_message_bytes}-byte limit"
            )
        end = _protocol.HEADER.size + size
        await self._fill(end)
        body = bytes(self._buffer[_protocol.HEADER.size : end])
        del self._buffer[:end]
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise WorkerGone(f"the worker sent malformed JSON: {exc}") from None
        if not isinstance(message, dict):
            raise WorkerGone("the worker sent a frame that is not a JSON object")
        return message

    async def send(self, message: dict[str, Any]) -> None:
        data = memoryview(_protocol.encode(message))
        while data:
            try:
                data = data[os.write(self._write_fd, data) :]
            except BlockingIOError:
                await self._wait_fd(self._write_fd, write=True)
            except BrokenPipeError:
                raise WorkerClosedPipe() from None

    async def wait_ready(self) -> ReadyMessage:
        if self.ready is None:
            message = WORKER_MESSAGE.validate_python(await self.receive())
            if not isinstance(message, ReadyMessage):
                raise WorkerGone("the worker did not start with a ready message")
            self.ready = message
        return self.ready

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass

    async def exit_description(self) -> str:
        """Why the worker ended (waits for it briefly, off the event loop)."""
        try:
            code = await asyncio.to_thread(self.process.wait, 5.0)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the worker stopped responding and was killed"
        if code < 0:
            reason = _EXIT_SIGNALS.get(signal.Signals(-code), f"killed by signal {-code}")
            if code == -signal.SIGXCPU:
                reason += f" ({self.limits.cpu_seconds} s)"
            return (
                f"the worker was {reason}"
                if reason.startswith("killed")
                else (f"the worker {reason}")
            )
        return f"the worker exited with code {code} without a result"


class SandboxPool:
    """A warm pool of sandbox workers; ``run`` executes one workflow script in one of them.

    Workers start lazily, on the first ``run`` (or ``start``). Each run takes a booted
    worker, and a replacement boots in the background. A run's outcome is always a
    ``SandboxResult``; the pool survives whatever the script does.
    """

    def __init__(self, size: int = 2, *, limits: Limits = DEFAULT_LIMITS) -> None:
        if size < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self.size = size
        self.limits = limits
        self._idle: deque[_Worker] = deque()
        self._dying: list[_Worker] = []
        self._started = False
        self._closed = False
        self._warned_seccomp = False
        self._allow_raw = False  # set only by tests: enables the policy-free hook

    def start(self) -> None:
        """Boot the workers now rather than on the first run."""
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        if not self._started:
            self._started = True
            while len(self._idle) < self.size:
                self._idle.append(_Worker(self.limits, allow_raw=self._allow_raw))

    def _take(self) -> _Worker:
        self.start()
        self._reap()
        worker = self._idle.popleft() if self._idle else None
        if worker is None or worker.process.poll() is not None:
            if worker is not None:
                self._retire(worker)
            worker = _Worker(self.limits, allow_raw=self._allow_raw)
        return worker

    def _refill(self) -> None:
        if not self._closed:
            while len(self._idle) < self.size:
                self._idle.append(_Worker(self.limits, allow_raw=self._allow_raw))

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        worker.close_pipes()
        self._dying.append(worker)

    def _reap(self) -> None:
        self._dying = [w for w in self._dying if w.process.poll() is None]

    async def run(
        self,
        source: str,
        *,
        args: dict[str, JsonValue],
        handler: Handler,
        timeout: float = 30.0,
        step_budget: int = 1_000_000,
        entry: Literal["script", "run"] = "script",
    ) -> SandboxResult:
        """Run ``source`` in a worker; ``handler`` answers its workflow API calls.

        ``entry="script"`` runs a cell body (result: its last expression, else the variable
        ``result``); ``entry="run"`` runs a workflow file and calls its ``run(args)``. On
        timeout the worker is killed (status ``timeout``); on cancellation it is killed and
        the ``CancelledError`` propagates. A handler's exception reaches the script as a
        ``WorkflowError`` with the exception's message.
        """
        return await self._run({"mode": "policy"}, source, args, handler, timeout, step_budget,
                               entry)  # fmt: skip

    async def _run_unrestricted_for_tests(
        self, source: str, handler: Handler, *, timeout: float = 10.0
    ) -> SandboxResult:
        """Test hook: run raw Python (no RestrictedPython) in a confined worker.

        It proves the process layer on its own. Only a pool with ``_allow_raw`` set honours
        it; production workers refuse it.
        """
        return await self._run({"mode": "raw"}, source, {}, handler, timeout, 1, "script")

    async def _run(
        self,
        extra: dict[str, Any],
        source: str,
        args: dict[str, JsonValue],
        handler: Handler,
        timeout: float,
        step_budget: int,
        entry: str,
    ) -> SandboxResult:
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        started = time.perf_counter()
        args = JSON_VALUE.validate_python(args)  # type: ignore[assignment]
        worker = self._take()
        seccomp = False

        def result(status: Any, **fields: Any) -> SandboxResult:
            duration = (time.perf_counter() - started) * 1000
            return SandboxResult(status=status, seccomp=seccomp, duration_ms=duration, **fields)

        try:
            async with asyncio.timeout(timeout):
                try:
                    ready = await worker.wait_ready()
                    seccomp = ready.seccomp
                    if not ready.seccomp and not self._warned_seccomp:
                        self._warned_seccomp = True
                        logger.warning(
                            "workflow sandbox without seccomp (%s): relying on rlimits and "
                            "RestrictedPython only",
                            ready.seccomp_error,
                        )
                    await worker.send(
                        {"type": "run", "source": source, "args": args, "entry": entry,
                         "step_budget": step_budget, **extra}
                    )  # fmt: skip
                    self._refill()
                    done = await self._converse(worker, handler)
                except (WorkerGone, ValidationError) as exc:
                    worker.kill()
                    if isinstance(exc, ValidationError):
                        why = f"the worker broke the protocol: {exc.errors()[0]['msg']}"
                    elif isinstance(exc, WorkerClosedPipe):
                        why = await worker.exit_description()
                    else:
                        why = str(exc)
                    return result("killed", error=why)
        except TimeoutError:
            return result("timeout", error=f"the workflow timed out after {timeout:g} s")
        finally:
            self._retire(worker)
            self._refill()
        return result(
            done.status,
            result=done.result,
            error=done.error,
            violation=done.violation,
            steps=done.steps,
        )

    async def _converse(self, worker: _Worker, handler: Handler) -> DoneMessage:
        while True:
            message = WORKER_MESSAGE.validate_python(await worker.receive())
            if isinstance(message, DoneMessage):
                return message
            if isinstance(message, ReadyMessage):
                raise WorkerGone("the worker sent a second ready message")
            reply = await self._answer(message, handler)
            if message.wait:
                await worker.send(reply)

    async def _answer(self, message: CallMessage, handler: Handler) -> dict[str, Any]:
        try:
            call = API_CALL.validate_python({"op": message.op, "params": message.params})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:])  # [0] is the op tag
            error = f"invalid {message.op} call: {where}: {first['msg']}"
            return {"type": "reply", "id": message.id, "ok": False, "error": error}
        try:
            value = JSON_VALUE.validate_python(await handler(call))
        except Exception as exc:  # any handler failure becomes the script's WorkflowError
            if not message.wait:
                logger.warning("workflow %s handler failed: %s", message.op, exc)
            return {"type": "reply", "id": message.id, "ok": False, "error": str(exc)}
        return {"type": "reply", "id": message.id, "ok": True, "value": value}

    async def aclose(self) -> None:
        """Stop the idle workers; runs in progress keep their own worker until they end."""
        self._closed = True
        while self._idle:
            self._retire(self._idle.popleft())
        dying, self._dying = self._dying, []
        for worker in dying:
            try:
                await asyncio.to_thread(worker.process.wait, 5.0)
            except subprocess.TimeoutExpired:
                logger.warning("sandbox worker %d did not exit", worker.process.pid)
