"""The sidebar's one cheap poll, ``GET /boonb/api/activity``, through a real `jupyter server`.

What runs is counted from rows the real code paths wrote (an agent, a background task held
in a tool, the writer); a row whose kernel died counts as interrupted, not running.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from boonb import api
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.store import Database
from boonb.store.activity import activity
from tests.background_kit import Kit
from tests.test_server_lists import Served, dead_pid, jupyter_server
from tests.test_server_views import kit, runtime, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def _activity(served: Served) -> dict[str, Any]:
    with served.client() as client:
        response = client.get("/boonb/api/activity")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_activity_counts_what_runs_and_its_version_changes_with_any_row(
    server: Served,  # noqa: F811
    runtime: Runtime,  # noqa: F811
) -> None:
    first = _activity(server)
    same = _activity(server)
    agent = api.new_agent(runtime=runtime)
    runtime.engine.run(agent.run("hello"))
    runtime.store.writer.flush()
    after_chat = _activity(server)
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO tasks (id, type, state, title, owner, owner_pid, owner_host, "
                "created_at, updated_at) VALUES (?, 'background_subagent', 'running', 'x', "
                "'k', ?, NULL, ?, ?)",
                [uuid.uuid4(), dead_pid(), datetime.now(UTC), datetime.now(UTC)],
            )
    finally:
        db.close()
    after_orphan = _activity(server)

    assert set(first) == {
        "chats_running",
        "tasks_running",
        "tasks_pending",
        "runs_running",
        "version",
    }
    assert same["version"] == first["version"]
    assert after_chat["version"] != first["version"]
    assert after_orphan["version"] != after_chat["version"]
    assert after_orphan["tasks_running"] == after_chat["tasks_running"]  # its kernel died


def test_a_running_background_task_counts_until_it_ends(
    server: Served,  # noqa: F811
    kit: Kit,  # noqa: F811
) -> None:
    before = _activity(server)
    kit.sim.add_rule(Rule("^held", tool_calls=[{"name": "gate", "arguments": {"name": "a"}}]))
    task = kit.tasks.spawn("held job", tools=["gate"]).task_id
    kit.until(
        lambda: (u := kit.latest(task)) and u.progress and u.progress.last_tool,
        "the subagent to wait in its gate",
    )
    kit.store.writer.flush()
    running = _activity(server)
    kit.gate("a").set()
    kit.until_state(task, "completed")
    kit.store.writer.flush()
    ended = _activity(server)

    assert running["tasks_running"] == before["tasks_running"] + 1
    assert running["chats_running"] == before["chats_running"] + 1  # the subagent's chat
    assert ended["tasks_running"] == before["tasks_running"]
    assert ended["chats_running"] == before["chats_running"]
    assert len({before["version"], running["version"], ended["version"]}) == 3


def test_activity_before_any_kernel_wrote_a_database_is_all_zero(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("activity-empty")
    project = base / "project"
    project.mkdir()
    with jupyter_server(base, project) as empty:
        answer = _activity(empty)
    assert answer == {
        "chats_running": 0,
        "tasks_running": 0,
        "tasks_pending": 0,
        "runs_running": 0,
        "version": "none",
    }
    assert not (project / ".boonb").exists()  # the server never creates the database


def test_an_activity_read_reports_the_files_open_its_reads_and_its_linger_apart(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "boonb.duckdb", linger=0.05)
    try:
        db.close()  # the read opens the file again
        timed = activity(db)
    finally:
        db.close()

    # The file is held from its open until the linger after the reads, not for the reads only.
    assert timed.linger_s == 0.05
    assert timed.open_s > 0 and timed.query_s > 0
    assert timed.held_s == pytest.approx(timed.open_s + timed.query_s + timed.linger_s)
