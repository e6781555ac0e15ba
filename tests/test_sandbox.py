"""The workflow sandbox: the API round trip, limits, misbehaving scripts, and the process
layer (rlimits + seccomp) on its own. Real worker processes throughout."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydantic import JsonValue

from boonb.workflow.sandbox import ApiCall, Limits, SandboxPool, SandboxResult

pytestmark = pytest.mark.slow


@dataclass
class RecordingHandler:
    """Stands in for the engine: records every call; ``agent.run`` answers ``id(input)``,
    ``parallel``/``phase`` one such string per item."""

    calls: list[ApiCall] = field(default_factory=list)
    fail_agent: str | None = None

    async def __call__(self, call: ApiCall) -> JsonValue:
        self.calls.append(call)
        match call.op:
            case "agent.run":
                if call.params.agent.id == self.fail_agent:
                    raise RuntimeError(f"agent {call.params.agent.id} failed")
                return f"{call.params.agent.id}({call.params.input})"
            case "parallel" | "phase":
                return [f"{item.agent.id}({item.input})" for item in call.params.items]
            case _:
                return None

    @property
    def ops(self) -> list[str]:
        return [call.op for call in self.calls]

    @property
    def logs(self) -> list[str]:
        return [call.params.message for call in self.calls if call.op == "log"]


def run(
    pool: SandboxPool,
    source: str,
    handler: RecordingHandler | None = None,
    **options: object,
) -> SandboxResult:
    options.setdefault("args", {})
    return asyncio.run(pool.run(source, handler=handler or RecordingHandler(), **options))  # type: ignore[arg-type]


def assert_pool_works(pool: SandboxPool) -> None:
    result = run(pool, "x = [i * i for i in range(4)]\nsum(x)")
    assert result.status == "completed", result
    assert result.result == 14


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(size=2)
    yield pool
    asyncio.run(pool.aclose())


WORKFLOW = """
log("start")
b = budget(1000)
writer = agent("writer", prompt="write", model="m", tools=["search"], budget=b)
reviewer = agent("reviewer", prompt="review", cache=False)
draft = writer.run(args["topic"])

def shout(text):
    return text.upper()

piped = pipeline([writer, shout, reviewer], input="p", budget=b)
both = parallel([writer, (reviewer, 2)], budget=b)
grouped = phase("review", agents=[(reviewer, "x")], budget=budget(50))
print("done", len(both))
{"draft": draft, "piped": piped, "both": both, "grouped": grouped, "n": args["n"]}
"""


def test_script_round_trips_every_op_in_order_and_returns_its_last_expression(pool):
    handler = RecordingHandler()
    result = run(pool, WORKFLOW, handler, args={"topic": "owls", "n": 2})
    assert result.status == "completed", result
    assert result.result == {
        "draft": "writer(owls)",
        "piped": "reviewer(WRITER(P))",
        "both": ["writer(None)", "reviewer(2)"],
        "grouped": ["reviewer(x)"],
        "n": 2,
    }
    assert handler.ops == [
        "log",
        "agent.register",
        "agent.register",
        "agent.run",
        "agent.run",
        "agent.run",
        "parallel",
        "phase",
        "log",
    ]
    assert handler.logs == ["start", "done 2"]
    register = handler.calls[1]
    assert register.op == "agent.register"
    assert register.params.agent.tools == ["search"]
    assert register.params.agent.budget is not None
    assert register.params.agent.budget.limit == 1000
    pipeline_run = handler.calls[4]
    assert pipeline_run.op == "agent.run"
    assert pipeline_run.params.budget is not None and pipeline_run.params.budget.limit == 1000
    phase = handler.calls[7]
    assert phase.op == "phase" and phase.params.name == "review"
    assert phase.params.budget is not None and phase.params.budget.limit == 50
    assert result.seccomp is (sys.platform == "linux")
    assert result.steps >= 1


def test_run_entry_calls_run_with_read_only_args(pool):
    source = 'workflow = {"name": "w"}\n\ndef run(args):\n    return {"got": args["x"] + 1}\n'
    result = run(pool, source, args={"x": 41}, entry="run")
    assert result.status == "completed", result
    assert result.result == {"got": 42}

    mutate = run(pool, 'args["x"] = 1', args={"x": 0})
    assert mutate.status == "violation"
    assert "mappingproxy" in (mutate.violation or "")


def test_result_variable_is_used_when_the_script_ends_with_a_statement(pool):
    result = run(pool, 'result = {"a": 1}\nlog("bye")')
    assert result.status == "completed" and result.result == {"a": 1}


def test_handler_error_is_a_catchable_workflow_error_in_the_script(pool):
    source = (
        'a = agent("a", prompt="p")\n'
        "try:\n    a.run(1)\nexcept WorkflowError as e:\n    result = 'caught: ' + e.message\n"
    )
    result = run(pool, source, RecordingHandler(fail_agent="a"))
    assert result.status == "completed", result
    assert result.result == "caught: agent a failed"

    uncaught = run(pool, 'agent("a", prompt="p").run(1)', RecordingHandler(fail_agent="a"))
    assert uncaught.status == "failed"
    assert uncaught.error == "WorkflowError: agent a failed (line 1)"


def test_host_validates_calls_before_the_handler_sees_them(pool):
    handler = RecordingHandler()
    result = run(pool, 'phase("", agents=[])', handler)
    assert result.status == "failed"
    assert "invalid phase call: params.name" in (result.error or "")
    assert handler.calls == []


def test_bad_api_arguments_fail_in_the_script(pool):
    assert "prompt must be a string" in (run(pool, 'agent("a", prompt=3)').error or "")
    assert "positive integer" in (run(pool, "budget(-1)").error or "")
    nonjson = run(pool, 'agent("a", prompt="p").run({1, 2})')
    assert nonjson.status == "failed" and "JSON" in (nonjson.error or "")


def test_result_must_be_json_and_not_huge(pool):
    not_json = run(pool, "result = {1, 2}")
    assert not_json.status == "failed"
    assert "must be JSON data" in (not_json.error or "")
    huge = run(pool, 'result = "x" * 2_000_000')
    assert huge.status == "failed" and "over the" in (huge.error or "")
    assert_pool_works(pool)


def test_syntax_error_is_a_plain_failure(pool):
    result = run(pool, "def f(:\n    pass")
    assert result.status == "failed"
    assert (result.error or "").startswith("SyntaxError")


def test_infinite_loop_hits_the_step_budget(pool):
    result = run(pool, "while True:\n    pass", step_budget=10_000)
    assert result.status == "failed"
    assert "step budget exceeded" in (result.error or "")
    assert result.steps == 10_001
    assert_pool_works(pool)


def test_infinite_loop_in_a_function_hits_the_step_budget_even_if_caught(pool):
    source = (
        "def spin():\n    while True:\n        try:\n            pass\n"
        "        except:\n            pass\n"
        "def outer():\n    try:\n        spin()\n    except:\n        return 'escaped'\n"
        "outer()\n"
    )
    result = run(pool, source, step_budget=5_000)
    assert result.status == "failed"
    assert "step budget exceeded" in (result.error or "")
    assert_pool_works(pool)


def test_busy_comprehension_counts_steps(pool):
    result = run(pool, "[i for i in range(10**9)]", step_budget=100_000)
    assert result.status == "failed" and "step budget" in (result.error or "")


def test_loopless_computation_hits_the_timeout(pool):
    result = run(pool, "x = 10**10**8", timeout=1.0)
    assert result.status == "timeout"
    assert result.error == "the workflow timed out after 1 s"
    assert_pool_works(pool)


def test_loopless_computation_hits_the_cpu_limit():
    async def scenario() -> tuple[SandboxResult, SandboxResult]:
        pool = SandboxPool(size=1, limits=Limits(cpu_seconds=1))
        try:
            handler = RecordingHandler()
            bomb = await pool.run("x = 10**10**8", args={}, handler=handler, timeout=20)
            after = await pool.run("1 + 1", args={}, handler=handler)
            return bomb, after
        finally:
            await pool.aclose()

    bomb, after = asyncio.run(scenario())
    assert bomb.status == "killed"
    assert "CPU time limit exceeded (1 s)" in (bomb.error or "")
    assert after.status == "completed" and after.result == 2


@pytest.mark.parametrize(
    "source",
    ['"x" * 10**10', "xs = []\nwhile True:\n    xs.append('x' * 10**7)", "[0] * 10**10"],
    ids=["string", "growing-list", "list-repeat"],
)
def test_memory_bomb_hits_the_address_space_limit(pool, source):
    result = run(pool, source, timeout=20)
    assert result.status in ("failed", "killed"), result
    assert "MemoryError" in (result.error or "") or "killed" in (result.error or "")
    assert_pool_works(pool)


def test_catching_memory_error_still_ends_in_a_structured_result(pool):
    source = 'try:\n    "x" * 10**10\nexcept MemoryError:\n    result = "survived"\n'
    result = run(pool, source)
    assert result.status == "completed" and result.result == "survived"


def test_deep_recursion_fails_cleanly(pool):
    result = run(pool, "def f(n):\n    return f(n + 1)\nf(0)")
    assert result.status == "failed"
    assert "RecursionError" in (result.error or "")
    assert_pool_works(pool)


def test_infinite_output_is_bounded(pool):
    handler = RecordingHandler()
    result = run(pool, 'while True:\n    print("spam" * 100000)', handler, step_budget=50)
    assert result.status == "failed" and "step budget" in (result.error or "")
    assert len(handler.logs) == 50
    assert all(len(line) <= 64 * 1024 + 20 for line in handler.logs)


def test_cancellation_kills_the_worker_and_the_pool_recovers(pool):
    pool.start()
    victim = pool._idle[0].process

    async def scenario() -> None:
        started = asyncio.Event()

        async def handler(call: ApiCall) -> JsonValue:
            started.set()
            return None

        task = asyncio.create_task(
            pool.run("log('go')\nwhile True:\n    pass", args={}, handler=handler,
                     step_budget=10**12)
        )  # fmt: skip
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert victim.wait(timeout=5) == -signal.SIGKILL
    assert_pool_works(pool)


def test_timeout_while_the_handler_is_waiting_kills_the_worker(pool):
    async def slow(call: ApiCall) -> JsonValue:
        await asyncio.sleep(10)
        return None

    result = asyncio.run(pool.run('agent("a", prompt="p")', args={}, handler=slow, timeout=0.5))
    assert result.status == "timeout"
    assert_pool_works(pool)


def test_pool_runs_concurrently(pool):
    async def scenario() -> list[SandboxResult]:
        handler = RecordingHandler()
        return await asyncio.gather(
            *(pool.run(f"{i} * 2", args={}, handler=handler) for i in range(5))
        )

    results = asyncio.run(scenario())
    assert [r.result for r in results] == [0, 2, 4, 6, 8]


# The process layer on its own: what raw Python (no RestrictedPython) can do in a worker.

RAW_PROBE = """
import ctypes, errno, os, resource
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
attempt("open", lambda: open("/etc/hostname").read())
attempt("open_write", lambda: open("/tmp/boonb-sandbox-raw-marker", "w"))
attempt("os_open", lambda: os.open("/etc/passwd", os.O_RDONLY))
attempt("fork", os.fork)
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("kill", lambda: os.kill(os.getppid(), 0))
attempt("dup", lambda: os.dup(0))
libc = ctypes.CDLL(None, use_errno=True)
out["socket"] = errno.errorcode[ctypes.get_errno()] if libc.socket(2, 1, 0) == -1 else "allowed"
out["env"] = sorted(os.environ)
out["limits"] = {
    "as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
}
result = out
"""


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_seccomp_blocks_files_sockets_and_processes_without_restricted_python(monkeypatch):
    monkeypatch.setenv("BOONB_TEST_SECRET", "do-not-leak")

    async def scenario() -> SandboxResult:
        pool = SandboxPool(size=1)
        pool._allow_raw = True
        try:
            return await pool._run_unrestricted_for_tests(RAW_PROBE, RecordingHandler())
        finally:
            await pool.aclose()

    result = asyncio.run(scenario())
    assert result.status == "completed", result
    assert result.seccomp is True
    out = result.result
    assert isinstance(out, dict)
    for name in ("open", "open_write", "os_open", "fork", "exec", "kill", "dup", "socket"):
        assert out[name] == "EPERM", (name, out[name])
    assert "BOONB_TEST_SECRET" not in out["env"]
    assert out["limits"] == {"as": Limits().memory_bytes, "nofile": 16, "fsize": 0, "nproc": 0}
    assert not os.path.exists("/tmp/boonb-sandbox-raw-marker")


def test_production_workers_refuse_the_raw_hook(pool):
    result = asyncio.run(
        pool._run_unrestricted_for_tests("import os\nresult = 1", RecordingHandler())
    )
    assert result.status == "violation"


def test_non_ascii_names_and_plain_data_work_after_confinement(pool):
    source = (
        "été = {'ville': 'Zürich', 'n': [1, 2.5, None, True]}\n"
        "s = ', '.join(sorted(k.upper() for k in été))\n"
        "(s, max(été['n'][:2]), round(2.675, 2), divmod(7, 2), f'{3.14159:.2f}')\n"
    )
    result = run(pool, source)
    assert result.status == "completed", result
    assert result.result == ["N, VILLE", 2.5, 2.67, [3, 1], "3.14"]
