"""The side panels' lists (chats, tasks, workflow runs) through a real `jupyter server`.

The project database is a real DuckDB file filled as kernels fill it; rows of a kernel
that died are owned by the pid of a process the test ran to its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from boonb.frames import TaskUpdate
from boonb.store import Database
from tests.test_server import LOCK_TIMEOUT_S, ONLY_BOONB, TOKEN, _free_port

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CHAT_STATES = ("completed", "in_progress", "failed")
TASK_STATES = ("completed", "failed", "read", "cancelled")
_TASK: TypeAdapter[TaskUpdate] = TypeAdapter(TaskUpdate)


@dataclass(frozen=True)
class Served:
    """A jupyter server with boonb, on a project whose database the test owns."""

    url: str
    project: Path

    @property
    def db_path(self) -> Path:
        return self.project / ".boonb" / "boonb.duckdb"

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextlib.contextmanager
def jupyter_server(
    base: Path, project: Path, *, lock_timeout: float = LOCK_TIMEOUT_S
) -> Iterator[Served]:
    """A real `jupyter server` whose root_dir (and so boonb's project) is ``project``.

    ``lock_timeout`` is how long it waits for a database another process holds before a
    503: short to test the 503, longer where kernels in the test write while it reads.
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOONB_", "JUPYTER_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    log_path = base / "server.log"
    with log_path.open("w") as log:
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
                f"--BoonbServer.lock_timeout={lock_timeout}",
            ],  # fmt: skip
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _until_up(url, process, log_path)
            yield Served(url, project)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # The server's readiness is only visible by asking it; there is no event to wait on.
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def dead_pid() -> int:
    """The pid of a process that has ended (a kernel that died)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@dataclass(frozen=True)
class Filled:
    chats: list[uuid.UUID]
    """Twelve chats, oldest first: titles 'alpha N' / 'beta N', states cycling."""
    subagent_chat: uuid.UUID
    """A chat a tool call started (not top-level), the newest chat."""
    tasks: list[uuid.UUID]
    """Twelve ended tasks, oldest first."""
    orphan_task: uuid.UUID
    """A running task whose kernel died."""
    orphan_run: uuid.UUID
    """A running workflow run whose kernel died."""
    spawned_chat: uuid.UUID
    """The chat of a subagent a notebook spawned (the first task's; no parent), the oldest."""


def _fill(db: Database) -> Filled:
    chats, tasks = [], []
    dead, here = dead_pid(), socket.gethostname()
    with db.connection() as con:
        for i in range(12):
            chat = uuid.uuid4()
            chats.append(chat)
            title = f"{'alpha' if i % 2 else 'beta'} {i}"
            con.execute(
                "INSERT INTO chats (id, title, model, created_at) VALUES (?, ?, 'sim', ?)",
                [chat, title, T0 + timedelta(minutes=i)],
            )
            con.execute(
                "INSERT INTO agent_sessions (id, chat_id, state, snapshot, kernel_pid, "
                "last_update) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    uuid.uuid4(), chat, CHAT_STATES[i % 3],
                    json.dumps({"title": title, "hostname": here}), os.getpid(),
                    T0 + timedelta(minutes=i, seconds=30),
                ],
            )  # fmt: skip
            for turn in range(1 + i % 3):  # model calls of i % 3 + 1 turns, and a tool call
                _trace(con, chat, turn, kind="model", seconds=turn)
            _trace(con, chat, 0, kind="tool", seconds=1)
        subagent = uuid.uuid4()
        con.execute(
            "INSERT INTO chats (id, title, parent_id, root_id, created_at) "
            "VALUES (?, 'alpha subagent', ?, ?, ?)",
            [subagent, uuid.uuid4(), chats[0], T0 + timedelta(hours=1)],
        )
        for i in range(12):
            task = uuid.uuid4()
            tasks.append(task)
            _task(con, task, TASK_STATES[i % 4], f"{'scan' if i % 2 else 'sort'} {i}", i, 1, here)
        orphan = uuid.uuid4()
        _task(con, orphan, "running", "orphan", 20, dead, here)
        # A subagent a notebook spawned: its chat has no parent, only its task says whose.
        spawned = uuid.uuid4()
        con.execute(
            "INSERT INTO chats (id, title, created_at) VALUES (?, 'alpha spawned', ?)",
            [spawned, T0 - timedelta(minutes=1)],
        )
        con.execute("UPDATE tasks SET chat_id = ? WHERE id = ?", [spawned, tasks[0]])
        run = uuid.uuid4()
        kernel = uuid.uuid4()
        con.execute(
            "INSERT INTO sessions (id, kernel_pid, hostname, started_at) VALUES (?, ?, ?, ?)",
            [kernel, dead, here, T0],
        )
        con.execute(
            "INSERT INTO workflow_runs (id, workflow, state, session_id, kernel_pid, created_at) "
            "VALUES (?, 'triage', 'running', ?, ?, ?)",
            [run, kernel, dead, T0],
        )
    return Filled(chats, subagent, tasks, orphan, run, spawned)


def _trace(con: Any, chat: uuid.UUID, turn: int, *, kind: str, seconds: int) -> None:
    model = kind == "model"
    con.execute(
        "INSERT INTO tool_traces (id, session_id, chat_id, turn_number, kind, tool_name, "
        "started_at, finished_at, input_tokens, output_tokens, cache_tokens, tokens_used, "
        "cost_usd, outcome) VALUES (?, ?, ?, ?, ?, 't', ?, ?, ?, ?, ?, ?, ?, 'success')",
        [
            uuid.uuid4(), chat, chat, turn, kind, T0 + timedelta(seconds=seconds),
            T0 + timedelta(seconds=seconds + 1), 100 if model else 0, 20 if model else 0,
            25 if model else 0, 120 if model else 0, 0.5 if model else None,
        ],
    )  # fmt: skip


def _task(
    con: Any, task: uuid.UUID, state: str, title: str, minute: int, pid: int, host: str
) -> None:
    con.execute(
        "INSERT INTO tasks (id, type, state, title, payload, owner, owner_pid, owner_host, "
        "attempt, created_at, updated_at) "
        "VALUES (?, 'background_subagent', ?, ?, ?, 'a-kernel', ?, ?, 1, ?, ?)",
        [
            task, state, title, json.dumps({"prompt": title}), pid, host,
            T0 + timedelta(minutes=minute), T0,
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Filled]]:
    base = tmp_path_factory.mktemp("lists")
    project = base / "project"
    project.mkdir()
    db = Database(project / ".boonb" / "boonb.duckdb")
    try:
        filled = _fill(db)
    finally:
        db.close()
    with jupyter_server(base, project) as server:
        yield server, filled


def all_pages(client: httpx.Client, path: str, key: str, **params: Any) -> list[list[dict]]:
    """Every page of a list, following next_cursor."""
    pages: list[list[dict]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    return error


# -- chats ---------------------------------------------------------------------------------


def test_chats_page_newest_first_through_every_chat_once(served: tuple[Served, Filled]) -> None:
    server, filled = served
    with server.client() as client:
        pages = all_pages(client, "/boonb/api/chats", "chats", limit=5)
    assert [len(page) for page in pages] == [5, 5, 4]
    ids = [chat["chat_id"] for page in pages for chat in page]
    expected = [filled.subagent_chat, *filled.chats[::-1], filled.spawned_chat]
    assert ids == [str(c) for c in expected]


def test_a_chat_shows_its_title_state_turns_tokens_cost_and_cache_rate(
    served: tuple[Served, Filled],
) -> None:
    server, filled = served
    with server.client() as client:
        chats = client.get("/boonb/api/chats", params={"top_level": "true", "limit": 1}).json()
    (chat,) = chats["chats"]
    # Chat 11: three turns of one model call each (100 in, 20 out, 25 cached, $0.5).
    assert chat["chat_id"] == str(filled.chats[11])
    assert (chat["title"], chat["state"], chat["turns"]) == ("alpha 11", "failed", 3)
    assert (chat["tokens_used"], chat["cost_usd"], chat["cache_hit_rate"]) == (360, 1.5, 0.25)
    assert chat["created_at"] == "2026-03-01T00:11:00Z"
    assert chat["last_activity"] == "2026-03-01T00:11:30Z"


def test_chats_filter_by_state_search_by_title_and_keep_only_top_level(
    served: tuple[Served, Filled],
) -> None:
    server, filled = served
    with server.client() as client:
        failed = client.get("/boonb/api/chats", params={"state": "failed"}).json()["chats"]
        alpha = client.get("/boonb/api/chats", params={"search": "ALPHA"}).json()["chats"]
        both = all_pages(
            client, "/boonb/api/chats", "chats", search="alpha", state="completed", limit=1
        )
        top = client.get("/boonb/api/chats", params={"top_level": "true"}).json()["chats"]
    assert [c["chat_id"] for c in failed] == [str(filled.chats[i]) for i in (11, 8, 5, 2)]
    assert [c["title"] for c in alpha] == ["alpha subagent"] + [
        f"alpha {i}" for i in (11, 9, 7, 5, 3, 1)
    ] + ["alpha spawned"]
    assert [c["title"] for page in both for c in page] == ["alpha 9", "alpha 3"]
    top_ids = [c["chat_id"] for c in top]
    assert str(filled.subagent_chat) not in top_ids and str(filled.spawned_chat) not in top_ids
    assert len(top) == 12


def test_a_chat_whose_kernel_died_while_it_ran_reads_interrupted(
    served: tuple[Served, Filled],
) -> None:
    server, _ = served
    chat = uuid.uuid4()
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO chats (id, title, created_at) VALUES (?, 'cut short', ?)",
                [chat, T0 - timedelta(days=1)],
            )
            con.execute(
                "INSERT INTO agent_sessions (id, chat_id, state, snapshot, kernel_pid, "
                "last_update) VALUES (?, ?, 'in_progress', ?, ?, ?)",
                [
                    uuid.uuid4(),
                    chat,
                    json.dumps({"hostname": socket.gethostname()}),
                    dead_pid(),
                    T0,
                ],
            )
        with server.client() as client:
            found = client.get("/boonb/api/chats", params={"search": "cut short"}).json()
    finally:
        with db.connection() as con:
            con.execute("DELETE FROM agent_sessions WHERE chat_id = ?", [chat])
            con.execute("DELETE FROM chats WHERE id = ?", [chat])
        db.close()
    assert [(c["chat_id"], c["state"]) for c in found["chats"]] == [(str(chat), "interrupted")]


# -- tasks ---------------------------------------------------------------------------------


def test_tasks_page_newest_first_as_task_update_frames(served: tuple[Served, Filled]) -> None:
    server, filled = served
    with server.client() as client:
        pages = all_pages(client, "/boonb/api/tasks", "tasks", limit=5)
    tasks = [_TASK.validate_python(t) for page in pages for t in page]
    assert [t.task_id for t in tasks] == [filled.orphan_task, *filled.tasks[::-1]]
    assert tasks[1].title == "scan 11" and tasks[1].state == "cancelled"
    assert all(t.type == "task:update" and t.task_type == "background_subagent" for t in tasks)


def test_a_task_added_between_two_pages_shifts_no_page(served: tuple[Served, Filled]) -> None:
    server, filled = served
    with server.client() as client:
        first = client.get("/boonb/api/tasks", params={"limit": 4, "search": "sort"}).json()
        db = Database(server.db_path)
        try:
            with db.connection() as con:  # a kernel spawns a task meanwhile
                _task(con, uuid.uuid4(), "failed", "sort newest", 30, 1, socket.gethostname())
        finally:
            db.close()
        params = {"limit": 4, "search": "sort", "cursor": first["next_cursor"]}
        second = client.get("/boonb/api/tasks", params=params).json()
        db = Database(server.db_path)
        try:
            with db.connection() as con:
                con.execute("DELETE FROM tasks WHERE title = 'sort newest'")
        finally:
            db.close()
    titles = [t["title"] for t in first["tasks"] + second["tasks"]]
    assert titles == [f"sort {i}" for i in (10, 8, 6, 4, 2, 0)]


def test_tasks_filter_by_state_and_search_by_title(served: tuple[Served, Filled]) -> None:
    server, _ = served
    with server.client() as client:
        done = client.get("/boonb/api/tasks", params={"state": "completed"}).json()["tasks"]
        failed_scans = client.get(
            "/boonb/api/tasks", params={"state": "failed", "search": "SCAN"}
        ).json()["tasks"]
    # A task whose result was read is shown completed: the filter takes both.
    assert [t["title"] for t in done] == [f"{w} {i}" for w, i in [
        ("sort", 10), ("sort", 8), ("sort", 6), ("sort", 4), ("sort", 2), ("sort", 0)
    ]]  # fmt: skip
    assert {t["state"] for t in done} == {"completed", "read"}
    assert [t["title"] for t in failed_scans] == ["scan 9", "scan 5", "scan 1"]


def test_a_task_whose_kernel_died_reads_interrupted(served: tuple[Served, Filled]) -> None:
    server, filled = served
    with server.client() as client:
        running = client.get("/boonb/api/tasks", params={"state": "running"}).json()["tasks"]
        interrupted = client.get("/boonb/api/tasks", params={"state": "interrupted"}).json()
    assert running == []
    (orphan,) = interrupted["tasks"]
    assert orphan["task_id"] == str(filled.orphan_task)
    assert "ended before it finished" in orphan["error"]


# -- workflow runs -------------------------------------------------------------------------


def test_a_run_whose_kernel_died_reads_interrupted(served: tuple[Served, Filled]) -> None:
    server, filled = served
    with server.client() as client:
        runs = client.get("/boonb/api/orchestrator/runs").json()["runs"]
    (run,) = runs
    assert (run["run_id"], run["state"]) == (str(filled.orphan_run), "interrupted")
    assert run["cancel_requested"] is False


# -- bad requests --------------------------------------------------------------------------

LISTS = ["/boonb/api/chats", "/boonb/api/tasks", "/boonb/api/orchestrator/runs"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("params", "error_type", "named"),
    [
        ({"limit": "0"}, "InvalidLimit", "limit"),
        ({"limit": "201"}, "InvalidLimit", "limit"),
        ({"limit": "ten"}, "InvalidLimit", "limit"),
        ({"state": "sleeping"}, "InvalidQuery", "state must be one of"),
        ({"search": ""}, "InvalidQuery", "search"),
        ({"cursor": "not-a-cursor"}, "InvalidCursor", "cursor"),
        ({"sort": "oldest"}, "InvalidQuery", "unknown query parameter 'sort'"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_problem(
    served: tuple[Served, Filled], path: str, params: dict[str, str], error_type: str, named: str
) -> None:
    server, _ = served
    with server.client() as client:
        error = _error(client.get(path, params=params), 400)
    assert error["type"] == error_type and named in error["message"]


@pytest.mark.parametrize("path", ["/boonb/api/chats", "/boonb/api/tasks"])
def test_a_tampered_cursor_or_one_of_other_filters_is_400(
    served: tuple[Served, Filled], path: str
) -> None:
    server, _ = served
    with server.client() as client:
        cursor = client.get(path, params={"limit": 2}).json()["next_cursor"]
        body, signature = cursor.split(".")
        flipped = ("A" if body[0] != "A" else "B") + body[1:]
        responses = [
            client.get(path, params={"cursor": f"{flipped}.{signature}"}),
            client.get(path, params={"cursor": cursor, "state": "failed"}),
            client.get(path, params={"cursor": cursor, "search": "a"}),
        ]
    for response in responses:
        error = _error(response, 400)
        assert error["type"] == "InvalidCursor" and "without a cursor" in error["message"]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_needs_the_token(served: tuple[Served, Filled], path: str) -> None:
    server, _ = served
    with server.client(None) as client:
        refused = client.get(path)
    assert refused.status_code == 403
    assert "chats" not in refused.text and "tasks" not in refused.text


@pytest.mark.parametrize("path", LISTS)
def test_a_database_held_past_the_timeout_is_503_with_retry_after(
    served: tuple[Served, Filled], path: str
) -> None:
    server, _ = served
    holder = Database(server.db_path, linger=60)  # another process's lingering handle
    try:
        with holder.connection():
            pass
        with server.client() as client:
            response = client.get(path)
    finally:
        holder.close()
    assert _error(response, 503)["type"] == "DatabaseLocked"
    assert int(response.headers["retry-after"]) > 0
    with server.client() as client:
        assert client.get(path).status_code == 200


def test_no_database_yet_is_empty_lists_and_not_created(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with jupyter_server(tmp_path, project) as server, server.client() as client:
        chats = client.get("/boonb/api/chats").json()
        tasks = client.get("/boonb/api/tasks").json()
    assert chats == {"chats": [], "next_cursor": None}
    assert tasks == {"tasks": [], "next_cursor": None}
    assert not server.db_path.exists()
