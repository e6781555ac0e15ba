"""The side panels' requests (cancel, retry) through a real `jupyter server`, carried out by
the kernel that owns the task or run.

The server runs no agents: it records a request in the project database, and the owner
carries it out at its next poll. Owners here are a task service or a runtime in the test
process, and a real kernel (``tests/kernels.py``) for a retry nobody owns yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from boonb import config
from boonb.frames import WorkflowStatus
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.store import Database
from tests.background_kit import Kit, make_kit
from tests.kernels import Kernel
from tests.test_background_kernel import SETUP
from tests.test_server import TOKEN
from tests.test_server_lists import Served, dead_pid, jupyter_server
from tests.test_workflow_tree import workflow_runtime

pytestmark = pytest.mark.slow

POLL_S = 0.1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("actions")
    project = base / "project"
    project.mkdir()
    Database(project / ".boonb" / "boonb.duckdb").close()  # the project has a database
    # Kernels in the test write while it reads: wait for them as a real server would.
    with jupyter_server(base, project, lock_timeout=10) as served:
        yield served


@pytest.fixture
def kit(server: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kit]:
    """A kernel's task service in the test process, on the server's database."""
    monkeypatch.setenv("BOONB_DB_PATH", str(server.db_path))
    config.reset()
    config.update(background_poll_interval_s=POLL_S)
    yield from make_kit()


@pytest.fixture
def runtime(server: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A kernel's runtime in the test process, on the server's database."""
    monkeypatch.setenv("BOONB_DB_PATH", str(server.db_path))
    config.reset()
    config.update(background_poll_interval_s=POLL_S)
    yield from workflow_runtime()


def _insert_task(
    server: Served, *, state: str, title: str, owner: str | None = "a-kernel", pid: int | None
) -> uuid.UUID:
    task, now = uuid.uuid4(), datetime.now(UTC)
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO tasks (id, type, state, title, payload, owner, owner_pid, "
                "owner_host, attempt, created_at, updated_at) "
                "VALUES (?, 'background_subagent', ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                [
                    task, state, title, json.dumps({"prompt": title, "tools": []}), owner, pid,
                    socket.gethostname(), now, now,
                ],
            )  # fmt: skip
    finally:
        db.close()
    return task


def _rows(server: Served, sql: str, *params: object) -> list[tuple[Any, ...]]:
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            return con.execute(sql, list(params)).fetchall()
    finally:
        db.close()


def _listed(server: Served, task: uuid.UUID) -> dict[str, Any]:
    with server.client() as client:
        tasks = client.get("/boonb/api/tasks", params={"limit": 200}).json()["tasks"]
    (found,) = [t for t in tasks if t["task_id"] == str(task)]
    return found


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    return error


@contextlib.contextmanager
def _logged_in(server: Served) -> Iterator[httpx.Client]:
    """A browser's session: logged in with the token once, then by cookie (as JupyterLab)."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        browser.get("/login")
        response = browser.post(
            "/login", data={"password": TOKEN, "_xsrf": browser.cookies["_xsrf"]}
        )
        assert response.status_code in (200, 302), response.text
        yield browser


# -- XSRF ----------------------------------------------------------------------------------


def test_a_post_without_the_xsrf_token_changes_nothing_and_is_403(server: Served) -> None:
    alive = _insert_task(server, state="running", title="xsrf running", pid=os.getpid())
    ended = _insert_task(server, state="failed", title="xsrf failed", pid=os.getpid())
    targets = [
        f"/boonb/api/tasks/{alive}/cancel",
        f"/boonb/api/tasks/{ended}/retry",
        f"/boonb/api/orchestrator/runs/{uuid.uuid4()}/cancel",
    ]
    with _logged_in(server) as browser, server.client(None) as anonymous:
        no_xsrf = [browser.post(target) for target in targets]
        no_login = [anonymous.post(target) for target in targets]
        assert _rows(server, "SELECT cancel_requested FROM tasks WHERE id = ?", alive) == [(False,)]
        assert _rows(server, "SELECT count(*) FROM tasks WHERE retry_of = ?", ended) == [(0,)]
        xsrf = {"X-XSRFToken": browser.cookies["_xsrf"]}
        with_xsrf = [browser.post(target, headers=xsrf) for target in targets]
    assert [r.status_code for r in no_xsrf + no_login] == [403] * 6
    # With the XSRF token the same session gets through: the requests are recorded.
    assert [r.status_code for r in with_xsrf] == [200, 200, 404]
    assert _rows(server, "SELECT cancel_requested FROM tasks WHERE id = ?", alive) == [(True,)]
    assert _rows(server, "SELECT count(*) FROM tasks WHERE retry_of = ?", ended) == [(1,)]


# -- tasks ---------------------------------------------------------------------------------


def test_a_cancel_from_the_server_is_carried_out_by_the_owning_kernel(
    server: Served, kit: Kit
) -> None:
    kit.sim.add_rule(Rule("^held", tool_calls=[{"name": "gate", "arguments": {"name": "g"}}]))
    task = kit.tasks.spawn("held job", tools=["gate"]).task_id
    kit.until(
        lambda: (u := kit.latest(task)) and u.progress and u.progress.last_tool,
        "the subagent to wait in its gate",
    )
    kit.store.writer.flush()

    with server.client() as client:
        asked = client.post(f"/boonb/api/tasks/{task}/cancel")
    ended = kit.until_state(task, "cancelled")
    kit.store.writer.flush()

    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert body["status"] == "cancelling" and body["task"]["cancel_requested"] is True
    assert "carries it out at its next poll" in body["message"]
    assert ended.error == "cancelled"
    assert (_listed(server, task)["state"], _listed(server, task)["cancel_requested"]) == (
        "cancelled",
        False,
    )
    with server.client() as client:
        again = _error(client.post(f"/boonb/api/tasks/{task}/cancel"), 409)
    assert again["type"] == "RequestRefused" and "already ended (cancelled)" in again["message"]


def test_a_cancel_reads_as_asked_until_the_owner_carries_it_out(server: Served) -> None:
    # Owned by a live process that never polls: the request stays asked, not done.
    task = _insert_task(server, state="running", title="slow owner", pid=os.getpid())
    with server.client() as client:
        asked = client.post(f"/boonb/api/tasks/{task}/cancel")
    assert asked.status_code == 200, asked.text
    listed = _listed(server, task)
    assert (listed["state"], listed["cancel_requested"]) == ("running", True)
    assert "session a-kernel" in asked.json()["message"]


def test_a_task_whose_kernel_died_reads_interrupted_and_its_cancel_gives_the_retry_command(
    server: Served,
) -> None:
    task = _insert_task(server, state="running", title="orphaned", pid=dead_pid())
    with server.client() as client:
        refused = _error(client.post(f"/boonb/api/tasks/{task}/cancel"), 409)
    assert _listed(server, task)["state"] == "interrupted"
    assert "the kernel that ran it is dead" in refused["message"]
    assert f"%tasks retry {task}" in refused["message"]


def test_a_retry_from_the_server_is_claimed_and_run_by_a_kernel_linked_to_the_old(
    server: Served,
) -> None:
    old = _insert_task(server, state="running", title="say hello", pid=dead_pid())
    with server.client() as client:
        asked = client.post(f"/boonb/api/tasks/{old}/retry")
    assert asked.status_code == 200, asked.text
    body = asked.json()
    new = body["task"]
    assert body["status"] == "retrying" and "the first kernel of this project" in body["message"]
    assert (new["state"], new["owner"], new["attempt"], new["retry_of"]) == (
        "pending",
        None,
        2,
        str(old),
    )
    assert _listed(server, old)["state"] == "interrupted"  # what made it retryable

    kernel = Kernel(server.project)
    try:
        out = kernel.execute(
            SETUP + f"NEW = {new['task_id']!r}\n"
            "done = threading.Event()\n"
            "def watch(f):\n"
            "    if f.type == 'task:update' and str(f.task_id) == NEW and f.state == 'completed':\n"
            "        done.set()\n"
            "rt.bus.subscribe(watch)\n"
            "tasks = rt.tasks  # its worker polls the table and claims the retry\n"
            "assert done.wait(120) or tasks.get(NEW).state in ('completed', 'read')\n"
            "rt.store.writer.flush()\n"
            "print(tasks.owner)",
            timeout=180,
        )
        assert not out["error"], out
        owner = "".join(out["stdout"]).strip().splitlines()[-1]
    finally:
        kernel.stop()

    ran = _listed(server, uuid.UUID(new["task_id"]))
    assert (ran["state"], ran["owner"], ran["retry_of"], ran["attempt"]) == (
        "completed",
        owner,
        str(old),
        2,
    )
    payloads = _rows(server, "SELECT payload FROM tasks WHERE id IN (?, ?)", old, new["task_id"])
    # The same payload (its owner writes it back with the defaults filled in).
    assert [json.loads(p)["prompt"] for (p,) in payloads] == ["say hello", "say hello"]
    with server.client() as client:
        twice = _error(client.post(f"/boonb/api/tasks/{old}/retry"), 409)
    assert f"already retried as task {new['task_id']}" in twice["message"]


def test_a_retry_nobody_claimed_yet_is_cancelled_by_the_server_itself(server: Served) -> None:
    old = _insert_task(server, state="failed", title="unclaimed", pid=os.getpid())
    with server.client() as client:
        new = client.post(f"/boonb/api/tasks/{old}/retry").json()["task"]["task_id"]
        cancelled = client.post(f"/boonb/api/tasks/{new}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["task"]["state"] == "cancelled"
    assert "never ran" in cancelled.json()["message"]


@pytest.mark.parametrize(
    ("action", "task_id", "status", "error_type", "named"),
    [
        ("cancel", "task-1", 400, "InvalidTaskId", "task id must be a UUID"),
        ("retry", "task-1", 400, "InvalidTaskId", "task id must be a UUID"),
        ("cancel", str(uuid.UUID(int=5)), 404, "NotStored", "GET /boonb/api/tasks"),
        ("retry", str(uuid.UUID(int=5)), 404, "NotStored", "GET /boonb/api/tasks"),
    ],
)
def test_a_bad_or_unknown_task_id_is_400_or_404(
    server: Served, action: str, task_id: str, status: int, error_type: str, named: str
) -> None:
    with server.client() as client:
        error = _error(client.post(f"/boonb/api/tasks/{task_id}/{action}"), status)
    assert error["type"] == error_type and named in error["message"]


def test_a_running_or_completed_task_cannot_be_retried_and_a_parameter_is_400(
    server: Served,
) -> None:
    running = _insert_task(server, state="running", title="busy", pid=os.getpid())
    done = _insert_task(server, state="read", title="done", pid=os.getpid())
    with server.client() as client:
        busy = _error(client.post(f"/boonb/api/tasks/{running}/retry"), 409)
        finished = _error(client.post(f"/boonb/api/tasks/{done}/retry"), 409)
        extra = _error(client.post(f"/boonb/api/tasks/{running}/cancel?now=1"), 400)
    assert "cancel it first" in busy["message"]
    assert "is completed: only a failed, cancelled or interrupted" in finished["message"]
    assert "unknown query parameter 'now'" in extra["message"]


# -- workflow runs -------------------------------------------------------------------------


def test_a_run_cancel_from_the_server_is_carried_out_by_its_kernel(
    server: Served, runtime: Runtime
) -> None:
    runtime.simulator().add_rule(Rule("slow", reply="finally", latency=120))
    running = threading.Event()

    def watch(frame: Any) -> None:
        if isinstance(frame, WorkflowStatus) and frame.state == "running":
            running.set()

    runtime.bus.subscribe(watch, types={"workflow:status"})
    manager = runtime.workflows
    run = manager.run_script('result = agent("a", prompt="p").run("slow please")', timeout=300)
    assert running.wait(60)
    runtime.store.writer.flush()

    with server.client() as client:
        asked = client.post(f"/boonb/api/orchestrator/runs/{run}/cancel")
    ended = manager.wait(run, timeout=60)
    runtime.store.writer.flush()

    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "cancelling"
    assert asked.json()["run"]["cancel_requested"] is True
    assert ended.state == "cancelled"
    with server.client() as client:
        after = client.get("/boonb/api/orchestrator/runs", params={"limit": 1}).json()["runs"]
        again = _error(client.post(f"/boonb/api/orchestrator/runs/{run}/cancel"), 409)
    assert (after[0]["run_id"], after[0]["state"]) == (str(run), "cancelled")
    assert after[0]["cancel_requested"] is False
    assert "already ended (cancelled)" in again["message"]


def test_a_run_asked_to_cancel_is_listed_as_cancelling_until_its_kernel_acts(
    server: Served,
) -> None:
    # A live owner that does not poll (this process, no runtime): the request stays pending,
    # as it does for a real kernel between its polls.
    run, kernel = uuid.uuid4(), uuid.uuid4()
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO sessions (id, kernel_pid, hostname, started_at) VALUES (?, ?, ?, ?)",
                [kernel, os.getpid(), socket.gethostname(), datetime.now(UTC)],
            )
            con.execute(
                "INSERT INTO workflow_runs (id, workflow, state, session_id, kernel_pid, "
                "created_at) VALUES (?, 'triage', 'running', ?, ?, ?)",
                [run, kernel, os.getpid(), datetime.now(UTC)],
            )
    finally:
        db.close()
    with server.client() as client:
        before = client.get("/boonb/api/orchestrator/runs", params={"state": "running"}).json()
        asked = client.post(f"/boonb/api/orchestrator/runs/{run}/cancel")
        listed = client.get("/boonb/api/orchestrator/runs", params={"state": "running"}).json()
    def flags(listing: dict[str, Any]) -> list[bool]:
        return [r["cancel_requested"] for r in listing["runs"] if r["run_id"] == str(run)]

    assert flags(before) == [False] and flags(listed) == [True], (before, listed)
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "cancelling"


def test_a_bad_unknown_or_orphaned_run_is_400_404_or_409(server: Served) -> None:
    run, kernel, dead = uuid.uuid4(), uuid.uuid4(), dead_pid()
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO sessions (id, kernel_pid, hostname, started_at) VALUES (?, ?, ?, ?)",
                [kernel, dead, socket.gethostname(), datetime.now(UTC)],
            )
            con.execute(
                "INSERT INTO workflow_runs (id, workflow, state, session_id, kernel_pid, "
                "created_at) VALUES (?, 'triage', 'running', ?, ?, ?)",
                [run, kernel, dead, datetime.now(UTC)],
            )
    finally:
        db.close()
    with server.client() as client:
        bad = _error(client.post("/boonb/api/orchestrator/runs/run-1/cancel"), 400)
        unknown = _error(client.post(f"/boonb/api/orchestrator/runs/{uuid.uuid4()}/cancel"), 404)
        orphan = _error(client.post(f"/boonb/api/orchestrator/runs/{run}/cancel"), 409)
    assert bad["type"] == "InvalidRunId"
    assert "GET /boonb/api/orchestrator/runs" in unknown["message"]
    assert "the kernel that ran it is dead" in orphan["message"]
    assert "%workflow run triage" in orphan["message"]
