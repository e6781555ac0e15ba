"""One exception root: every error a user can hit is a BoonbError, and magics print it."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import boonb
from boonb import BoonbError
from boonb.config import ConfigError
from boonb.errors import StoreError, WorkflowError
from boonb.magics.report import reports_errors

# Modules that run only inside a sandbox worker process (started with just these files on
# its path): what they raise reaches the script, or the kernel as the run's status.
WORKER_SIDE = {
    "boonb.workflow.sandbox._api",
    "boonb.workflow.sandbox._confine",
    "boonb.workflow.sandbox._policy",
    "boonb.workflow.sandbox._protocol",
    "boonb.workflow.sandbox._worker",
}
# Exceptions that are not BoonbErrors on purpose, with the reason.
NOT_BOONB_ERRORS = {
    # DESIGN section 1: the engine imports nothing of boonb, not even boonb.errors.
    "boonb.engine.EngineStopped",
}


def boonb_modules() -> list[str]:
    names = [boonb.__name__]
    for info in pkgutil.walk_packages(boonb.__path__, prefix="boonb."):
        if info.name not in WORKER_SIDE and ".static" not in info.name:
            names.append(info.name)
    return names


def exception_classes() -> list[type[BaseException]]:
    found = []
    for name in boonb_modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(value, BaseException)
                and value.__module__ == name
                and not value.__name__.startswith("_")
            ):
                found.append(value)
    return found


def test_the_walk_finds_the_exceptions_of_every_concern() -> None:
    names = {f"{c.__module__}.{c.__name__}" for c in exception_classes()}
    for expected in (
        "boonb.errors.BoonbError",
        "boonb.store.errors.InvalidQuery",
        "boonb.providers.errors.RateLimitError",
        "boonb.agent.tools.errors.UnknownToolError",
        "boonb.workflow.manager.UnknownRun",
        "boonb.workflow.sandbox._pool.WorkerGone",
        "boonb.server.traces.ChatNotFound",
        "boonb.api.SessionNotFound",
    ):
        assert expected in names


def test_every_exception_a_user_can_hit_is_a_boonb_error() -> None:
    stray = [
        f"{c.__module__}.{c.__name__}"
        for c in exception_classes()
        if not issubclass(c, BoonbError)
        and f"{c.__module__}.{c.__name__}" not in NOT_BOONB_ERRORS
    ]
    assert stray == []


def test_rebased_errors_keep_the_builtin_bases_existing_except_clauses_catch() -> None:
    from boonb.agent.tools.errors import UnknownToolError
    from boonb.providers import ToolArgumentsError, UnknownProfileError
    from boonb.server.traces import ChatNotFound
    from boonb.store import InvalidQuery
    from boonb.workflow.discovery import InvalidWorkflowFile, WorkflowArgsError
    from boonb.workflow.manager import UnknownRun, UnknownWorkflow

    for error, builtin in [
        (InvalidQuery, ValueError),
        (ConfigError, ValueError),
        (ToolArgumentsError, ValueError),
        (WorkflowArgsError, ValueError),
        (InvalidWorkflowFile, ValueError),
        (UnknownToolError, KeyError),
        (UnknownProfileError, KeyError),
        (UnknownWorkflow, LookupError),
        (UnknownRun, LookupError),
        (ChatNotFound, LookupError),
    ]:
        assert issubclass(error, BoonbError) and issubclass(error, builtin), error


def test_one_class_per_group_however_it_is_imported() -> None:
    from boonb.agent.loop import AgentError as LoopAgentError
    from boonb.errors import AgentError
    from boonb.store import StoreError as PackageStoreError
    from boonb.workflow.runner import WorkflowError as RunnerWorkflowError

    assert PackageStoreError is StoreError
    assert RunnerWorkflowError is WorkflowError
    assert LoopAgentError is AgentError


def test_boonb_error_is_exported_by_name_from_boonb() -> None:
    assert "BoonbError" in boonb.__all__
    assert "BoonbError" in vars(boonb)  # a real attribute, not a module __getattr__


def test_the_errors_module_imports_nothing_of_boonb() -> None:
    tree = ast.parse(Path(boonb.__file__).with_name("errors.py").read_text())
    imported = [
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom)
            else []
        )
    ]  # fmt: skip
    assert imported == ["__future__"]


# -- magics -------------------------------------------------------------------------------


def test_a_wrapped_magic_prints_a_boonb_error_as_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @reports_errors
    def failing(line: str) -> str:
        raise StoreError(f"no saved chat {line}; see %agent sessions")

    assert failing("abc") is None
    captured = capsys.readouterr()
    assert captured.err == "boonb: no saved chat abc; see %agent sessions\n"
    assert captured.out == ""


def test_a_wrapped_magic_leaves_bad_lines_to_ipython_and_bugs_to_their_traceback() -> None:
    @reports_errors
    def bad_line() -> None:
        raise UsageError("unknown option --x\nusage: %x")

    @reports_errors
    def bug() -> None:
        raise KeyError("a bug")

    with pytest.raises(UsageError):
        bad_line()
    with pytest.raises(KeyError):
        bug()


def _ipython(code: str, project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOONB_")}
    environment.update(BOONB_PROJECT=str(project), **env)
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=project,
    )


@pytest.mark.slow
def test_magics_given_failing_calls_print_the_message_without_a_traceback(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_text("hello\n" * 50)
    run, chat = uuid.uuid4(), uuid.uuid4()
    code = (
        "%load_ext boonb\n"
        f"%workflow status {run}\n"  # read from the database, which is unusable
        f"%agent resume {chat}\n"
        "%traces not-a-chat\n"
        "%agent sessions\n"
        "%boonb config no_such_setting=1\n"
        "print('still running')\n"
    )
    result = _ipython(code, tmp_path, BOONB_DB_PATH=str(bad))
    err = result.stderr
    assert "Traceback" not in err + result.stdout, err
    lines = [line for line in err.splitlines() if line.startswith("boonb: ")]
    assert len(lines) == 6, err  # load_ext's own line, then one per failing magic
    assert all("not a DuckDB database" in line for line in lines[1:3])
    assert lines[3] == "boonb: chat id must be a UUID, got 'not-a-chat'"
    assert "not a DuckDB database" in lines[4]
    assert lines[5].startswith("boonb: unknown setting no_such_setting; known settings: ")
    assert "still running" in result.stdout
