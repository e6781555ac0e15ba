"""The orchestrator's REST endpoints, through a real `jupyter server` on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from boonb import config
from boonb.frames import WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.runtime import Runtime
from boonb.store import Database, Store
from boonb.store.workflow_runs import run_row
from tests.conftest import T0
from tests.test_server import LOCK_TIMEOUT_S, ONLY_BOONB, TOKEN, _free_port
from tests.test_workflow_orchestrator import SCRIPT
from tests.test_workflow_tree import workflow_runtime

pytestmark = pytest.mark.slow

API = "/boonb/api/orchestrator"
PROJECT_WORKFLOW = """
workflow = {
    "name": "triage",
    "description": "Sort the issues of the week.",
    "args": {
        "label": {"type": "string", "description": "Only issues with this label."},
        "limit": {"type": "integer", "description": "At most this many.", "default": 20},
        "dry_run": {"type": "boolean", "description": "Change nothing.", "default": True},
        "weights": {"type": "object", "description": "Weight per label.", "default": {}},
    },
}

def run(args):
    return args
"""
STATES = ("completed", "failed", "cancelled")
NAMES = ("deep-research", "multi-review", "triage")


@dataclass(frozen=True)
class Server:
    url: str
    db_path: Path
    runs: list[uuid.UUID]
    """Thirty stored runs, newest last."""
    with_steps: uuid.UUID
    """A run with two steps and three log lines."""

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _fill(db_path: Path) -> tuple[list[uuid.UUID], uuid.UUID]:
    store = Store(db_path, flush_interval=0.05)
    ids = []
    try:
        for i in range(30):
            status = WorkflowStatus(
                run_id=uuid.uuid4(), workflow=NAMES[i % 3], state=STATES[i % 3], tokens_used=i
            )
            store.writer.enqueue(
                run_row(
                    status,
                    args={"i": i},
                    result={"n": i},
                    session_id=uuid.uuid4(),
                    kernel_pid=1,
                    created_at=T0 + timedelta(minutes=i // 2),
                )
            )
            ids.append(status.run_id)
        run = ids[0]
        for index, label in enumerate(("a #1", "a #2"), start=1):
            store.writer.enqueue(
                WorkflowStep(
                    run_id=run,
                    agent_id="a",
                    state="completed",
                    trace_id=uuid.uuid4(),
                    label=label,
                    index=index,
                    call_index=index,
                    tokens_used=10 * index,
                )  # fmt: skip
            )
        for seq in (1, 2, 3):
            store.writer.enqueue(WorkflowLog(run_id=run, message=f"line {seq}", at=T0, seq=seq))
        assert store.writer.flush()
    finally:
        store.close()
    return ids, run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("jupyter")
    project = base / "project"
    (project / ".boocode" / "workflows").mkdir(parents=True)
    (project / ".boocode" / "workflows" / "triage.py").write_text(PROJECT_WORKFLOW)
    db_path = project / ".boonb" / "boonb.duckdb"
    runs, with_steps = _fill(db_path)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOONB_", "JUPYTER_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        HOME=str(base / "home"),  # no user workflows but the test's
    )
    log = (base / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={project}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.jpserver_extensions={ONLY_BOONB!r}",
            f"--BoonbServer.lock_timeout={LOCK_TIMEOUT_S}",
        ],  # fmt: skip
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (base / "server.log").read_text()
            try:
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (base / "server.log").read_text()
            time.sleep(0.1)
        yield Server(url, db_path, runs, with_steps)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"type", "message"}
    return error


def _all_runs(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 4, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{API}/runs", params=query)
        assert response.status_code == 200, response.text
        runs += response.json()["runs"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return runs


def test_workflows_lists_the_builtins_and_the_projects_with_their_args(server: Server) -> None:
    with server.client() as client:
        response = client.get(f"{API}/workflows")
    assert response.status_code == 200, response.text
    found = {w["name"]: w for w in response.json()["workflows"]}
    for name in ("deep-research", "multi-review", "plan-verify", "bounty-hunt"):
        assert found[name]["source"] == "builtin"
    triage = found["triage"]
    assert (triage["source"], triage["description"]) == ("project", "Sort the issues of the week.")
    assert triage["args"] == [
        {"name": "label", "type": "string", "description": "Only issues with this label.",
         "default": None, "required": True},
        {"name": "limit", "type": "integer", "description": "At most this many.",
         "default": 20, "required": False},
        {"name": "dry_run", "type": "boolean", "description": "Change nothing.",
         "default": True, "required": False},
        {"name": "weights", "type": "object", "description": "Weight per label.",
         "default": {}, "required": False},
    ]  # fmt: skip
    assert triage["args_schema"]["required"] == ["label"]


def test_runs_page_newest_first_through_every_run_once(server: Server) -> None:
    with server.client() as client:
        first = client.get(f"{API}/runs", params={"limit": 4}).json()
        runs = _all_runs(client)
    assert len(first["runs"]) == 4 and isinstance(first["next_cursor"], str)
    assert sorted(r["run_id"] for r in runs) == sorted(str(r) for r in server.runs)
    keys = [(r["created_at"], r["run_id"]) for r in runs]
    assert keys == sorted(keys, reverse=True)
    assert runs[0]["args"]["i"] in (28, 29)


def test_runs_filter_by_state_and_search_by_workflow_name(server: Server) -> None:
    with server.client() as client:
        failed = _all_runs(client, state="failed")
        review = _all_runs(client, search="Review")
        both = _all_runs(client, state="failed", search="review")
        none = client.get(f"{API}/runs", params={"search": "nothing-like-it"}).json()
    assert len(failed) == 10 and {r["state"] for r in failed} == {"failed"}
    assert len(review) == 10 and {r["workflow"] for r in review} == {"multi-review"}
    assert both == failed  # every failed run here is a multi-review
    assert none == {"runs": [], "next_cursor": None}


def test_one_run_has_its_status_steps_logs_and_result(server: Server) -> None:
    with server.client() as client:
        body = client.get(f"{API}/runs/{server.with_steps}").json()
    assert body["status"]["run_id"] == str(server.with_steps)
    assert body["status"]["state"] == "completed" and body["status"]["type"] == "workflow:status"
    assert [(s["label"], s["tokens_used"]) for s in body["steps"]] == [("a #1", 10), ("a #2", 20)]
    assert [line["message"] for line in body["logs"]] == ["line 1", "line 2", "line 3"]
    assert body["logs_total"] == 3 and body["result"] == {"n": 0} and body["args"] == {"i": 0}
    assert body["live"] is False


@pytest.mark.parametrize(
    ("params", "error_type", "named"),
    [
        ({"limit": "0"}, "InvalidLimit", "limit"),
        ({"limit": "201"}, "InvalidLimit", "limit"),
        ({"limit": "many"}, "InvalidLimit", "limit"),
        ({"state": "done"}, "InvalidQuery", "state"),
        ({"search": ""}, "InvalidQuery", "search"),
        ({"cursor": ""}, "InvalidCursor", "cursor"),
        ({"cursor": "not-a-cursor"}, "InvalidCursor", "cursor"),
        ({"sort": "old"}, "InvalidQuery", "sort"),
        ([("state", "failed"), ("state", "completed")], "InvalidQuery", "state"),
    ],
)
def test_bad_runs_parameters_are_400_naming_the_problem(
    server: Server, params: Any, error_type: str, named: str
) -> None:
    with server.client() as client:
        error = _error(client.get(f"{API}/runs", params=params), 400)
    assert error["type"] == error_type and named in error["message"]


def test_a_tampered_cursor_or_one_of_other_filters_is_400(server: Server) -> None:
    with server.client() as client:
        cursor = client.get(f"{API}/runs", params={"limit": 4}).json()["next_cursor"]
        body, signature = cursor.split(".")
        flipped = ("A" if body[0] != "A" else "B") + body[1:]
        responses = [
            client.get(f"{API}/runs", params={"cursor": f"{flipped}.{signature}"}),
            client.get(f"{API}/runs", params={"cursor": cursor, "state": "failed"}),
            client.get(f"{API}/runs", params={"cursor": cursor, "search": "deep"}),
        ]
    for response in responses:
        error = _error(response, 400)
        assert (
            error["type"] == "InvalidCursor" and "start again without a cursor" in error["message"]
        )


def test_a_bad_or_unknown_run_id_is_400_or_404(server: Server) -> None:
    unknown = uuid.uuid4()
    with server.client() as client:
        bad = _error(client.get(f"{API}/runs/run-1"), 400)
        missing = _error(client.get(f"{API}/runs/{unknown}"), 404)
        extra = _error(client.get(f"{API}/runs/{server.with_steps}", params={"full": "1"}), 400)
        listing = _error(client.get(f"{API}/workflows", params={"refresh": "1"}), 400)
    assert bad["type"] == "InvalidRunId" and "run id must be a UUID" in bad["message"]
    assert missing["type"] == "RunNotFound" and str(unknown) in missing["message"]
    assert "GET /boonb/api/orchestrator/runs" in missing["message"]
    assert extra["type"] == "InvalidQuery" and "full" in extra["message"]
    assert listing["type"] == "InvalidQuery" and "refresh" in listing["message"]


@pytest.mark.parametrize("path", ["workflows", "runs", "runs/{run}"])
def test_every_endpoint_needs_the_token(server: Server, path: str) -> None:
    with server.client(None) as client:
        refused = client.get(f"{API}/{path.format(run=server.with_steps)}")
    assert refused.status_code in (401, 403)
    assert str(server.with_steps) not in refused.text and "deep-research" not in refused.text


def test_a_database_held_past_the_timeout_is_503_with_retry_after(server: Server) -> None:
    holder = Database(server.db_path, linger=60)  # as another process's lingering handle
    try:
        with holder.connection():
            pass
        with server.client() as client:
            responses = [
                client.get(f"{API}/runs"),
                client.get(f"{API}/runs/{server.with_steps}"),
            ]
    finally:
        holder.close()
    for response in responses:
        error = _error(response, 503)
        assert error["type"] == "DatabaseLocked" and int(response.headers["retry-after"]) > 0
    with server.client() as client:
        assert client.get(f"{API}/runs").status_code == 200


@pytest.fixture
def served_runtime(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("BOONB_DB_PATH", str(server.db_path))
    config.reset()
    yield from workflow_runtime()


def test_a_kernels_finished_run_reads_the_same_over_rest(
    server: Server, served_runtime: Runtime
) -> None:
    manager = served_runtime.workflows
    run_id = manager.run_script(SCRIPT)
    assert manager.wait(run_id, timeout=120).state == "completed"
    live = manager.detail(run_id).model_dump(mode="json")
    served_runtime.store.writer.flush()
    served_runtime.store.db.close()  # let go of the file, as an idle kernel does
    with server.client() as client:
        body = client.get(f"{API}/runs/{run_id}").json()
        newest = client.get(f"{API}/runs", params={"limit": 1}).json()["runs"][0]
    assert {**body, "live": True} == live
    assert newest["run_id"] == str(run_id) and newest["agents_done"] == 4
