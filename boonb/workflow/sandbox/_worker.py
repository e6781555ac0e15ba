"""The sandbox worker process: boot, confine, run one script, report, exit.

Started by the pool as a fresh interpreter (see ``_pool.BOOTSTRAP``); it imports only this
sub-package's worker-side modules and RestrictedPython, never the rest of boonb. Everything
a run needs is imported and exercised *before* the confinement goes on, because after it
no file can be opened (so no module can be imported).
"""

from __future__ import annotations

import ast
import json
import os
import sys
import types
import unicodedata  # noqa: F401 - ast.parse needs it for non-ASCII names (NFKC)
from typing import Any, NoReturn

from . import _protocol
from ._api import API_ATTRIBUTES, WorkflowApi, WorkflowError
from ._confine import apply_rlimits, install_seccomp
from ._limits import Limits
from ._policy import (
    LAST_VALUE,
    SCRIPT_FILENAME,
    CompileRefused,
    Guards,
    StepCounter,
    compile_script,
)

RAW_FILENAME = "<raw>"


class _PipeTransport:
    """Calls go out as ``call`` frames; a blocking call waits for its ``reply``."""

    def __init__(self, read_fd: int, write_fd: int, max_bytes: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._max_bytes = max_bytes
        self._next_id = 0

    def _send(self, op: str, params: dict[str, Any], *, wait: bool) -> int:
        self._next_id += 1
        message = {"type": "call", "id": self._next_id, "wait": wait, "op": op, "params": params}
        try:
            data = _protocol.encode(message)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: arguments must be JSON values ({exc})") from None
        if len(data) > self._max_bytes:
            raise ValueError(f"{op}: arguments too large ({len(data)} bytes)")
        _write_all(self._write_fd, data)
        return self._next_id

    def call(self, op: str, params: dict[str, Any]) -> Any:
        call_id = self._send(op, params, wait=True)
        reply = _protocol.read_frame(self._read_fd, self._max_bytes)
        if reply is None:
            os._exit(3)  # the host is gone
        if reply.get("type") != "reply" or reply.get("id") != call_id:
            os._exit(4)
        if reply.get("ok"):
            return reply.get("value")
        raise WorkflowError(str(reply.get("error")))

    def notify(self, op: str, params: dict[str, Any]) -> None:
        self._send(op, params, wait=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Run:
    """One script run; ``finish`` reports and ends the process (it cannot be caught)."""

    def __init__(self, out_fd: int, limits: Limits) -> None:
        self._out_fd = out_fd
        self._limits = limits
        self.steps: StepCounter | None = None

    def finish(self, status: str, **fields: Any) -> NoReturn:
        message = {
            "type": "done",
            "status": status,
            "result": None,
            "error": None,
            "violation": None,
            "steps": self.steps.count if self.steps else 0,
            **fields,
        }
        _protocol.write_frame(self._out_fd, message)
        os._exit(0)

    def violation(self, what: str) -> NoReturn:
        self.finish("violation", violation=what, error=f"sandbox violation: {what}")

    def out_of_steps(self, budget: int) -> NoReturn:
        self.finish(
            "failed",
            error=(
                f"step budget exceeded: the script ran more than {budget} steps "
                "(loop iterations and function calls); raise step_budget or simplify it"
            ),
        )


def _error_line(exc: BaseException) -> str:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (SCRIPT_FILENAME, RAW_FILENAME):
            line = tb.tb_lineno
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} (line {line})" if line is not None else text


def execute(
    request: dict[str, Any], *, transport: Any, run: _Run, limits: Limits, raw: bool
) -> tuple[str, dict[str, Any]]:
    """Run one script; returns (status, fields) unless a guard ends the process first."""
    source = request["source"]
    entry = request.get("entry", "script")
    api = WorkflowApi(transport, request.get("args") or {}, max_log_bytes=limits.max_log_bytes)
    if raw:  # the test-only hook: no policy, only the process confinement
        namespace: dict[str, Any] = {}
        exec(compile(source, RAW_FILENAME, "exec"), namespace)
        return "completed", {"result": namespace.get("result")}
    try:
        code = compile_script(source, entry=entry)
    except SyntaxError as exc:
        return "failed", {"error": f"SyntaxError: {exc.msg} (line {exc.lineno})"}
    except CompileRefused as exc:
        return "violation", {"violation": str(exc), "error": f"refused: {exc}"}
    run.steps = StepCounter(int(request.get("step_budget", 1_000_000)), run.out_of_steps)
    guards = Guards(on_violation=run.violation, log=api.log, api_attributes=API_ATTRIBUTES)
    namespace = guards.globals(api.names(), run.steps)
    exec(code, namespace)
    if entry == "run":
        function = namespace.get("run")
        if not isinstance(function, types.FunctionType):
            return "failed", {"error": "a workflow file must define run(args)"}
        value = function(api.args)
    else:
        value = namespace.get(LAST_VALUE)
        if value is None:
            value = namespace.get("result")
    return "completed", {"result": value}


def _check_result(value: Any, limits: Limits) -> str | None:
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"the result must be JSON data (dict, list, str, number, bool, None): {exc}"
    except RecursionError:
        return "the result is nested too deeply"
    if len(encoded) > limits.max_result_bytes:
        return f"the result is {len(encoded)} bytes, over the {limits.max_result_bytes} limit"
    return None


def _warm_up(limits: Limits) -> None:
    """Exercise compile, guards and JSON once so nothing is imported lazily later."""

    class _Null:
        def call(self, op: str, params: dict[str, Any]) -> Any:
            _protocol.encode({"op": op, "params": params})
            return None

        def notify(self, op: str, params: dict[str, Any]) -> None:
            _protocol.encode({"op": op, "params": params})

    sample = (
        "b = budget(10)\na = agent('a', prompt='p', budget=b)\n"
        "xs = [i * 2 for i in range(3) if i]\nd = {k: v for k, v in zip('ab', xs)}\n"
        "def f(x):\n    return x.upper()\nprint('%s' % f('w'), a.id, sorted(xs))\n"
        "try:\n    raise ValueError('v')\nexcept ValueError as e:\n    xs += [e.args]\n"
        "\u00e9t\u00e9 = 'summer'\npipeline([f], input='x')\nparallel([a, (a, 1)])\n"
        "log(f'{len(xs)!r:>3}')\nxs\n"
    )
    run = _Run(-1, limits)
    execute(
        {"source": sample, "args": {"k": 1}}, transport=_Null(), run=run, limits=limits, raw=False
    )
    json.loads(json.dumps({"a": [1, 2.5, None, True, "é"]}))
    _error_line(ValueError("x"))
    try:
        ast.parse("(", "<warm>")
    except SyntaxError:
        pass


def main(argv: list[str]) -> None:
    limits = Limits.from_json(json.loads(argv[0]))
    allow_raw = len(argv) > 1 and argv[1] == "raw"
    # The protocol gets its own descriptors; 0 becomes /dev/null and 1 joins stderr, so
    # stray output from the interpreter can never corrupt a frame.
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.setrecursionlimit(limits.recursion_limit)
    _warm_up(limits)

    apply_rlimits(limits)
    seccomp_error = install_seccomp(read_fds=[read_fd], write_fds=[write_fd, 1, 2])
    _protocol.write_frame(
        write_fd,
        {"type": "ready", "pid": os.getpid(), "seccomp": seccomp_error is None,
         "seccomp_error": seccomp_error},
    )  # fmt: skip

    request = _protocol.read_frame(read_fd, limits.max_message_bytes)
    if request is None or request.get("type") != "run":
        os._exit(0)
    run = _Run(write_fd, limits)
    transport = _PipeTransport(read_fd, write_fd, limits.max_message_bytes)
    raw = allow_raw and request.get("mode") == "raw"
    try:
        status, fields = execute(request, transport=transport, run=run, limits=limits, raw=raw)
    except RecursionError:
        run.finish("failed", error="RecursionError: maximum recursion depth exceeded")
    except MemoryError:
        run.finish("failed", error="MemoryError: the run exceeded its memory limit")
    except BaseException as exc:  # the script's own error, reported as the run's failure
        run.finish("failed", error=_error_line(exc))
    if status == "completed":
        problem = _check_result(fields.get("result"), limits)
        if problem is not None:
            run.finish("failed", error=problem)
    run.finish(status, **fields)
