"""``boonb.spawn`` and its TaskHandle, the kernel's wiring (``runtime.tasks``), the settings,
and the ``tasks`` table's migration.

A real Runtime: its own simulator (over HTTP), engine and DuckDB file.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from boonb import api, config
from boonb.background import TaskFailed, TaskNotReady, TaskStateError
from boonb.errors import ConfigError
from boonb.runtime import Runtime
from boonb.sim import Rule
from boonb.store import Store
from boonb.store import tasks as task_rows

V1 = Path(__file__).parent / "fixtures" / "boonb-v1.duckdb"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    (config.get_settings().project).mkdir(parents=True, exist_ok=True)
    made = Runtime()
    yield made
    made.shutdown()


def test_spawn_returns_a_handle_to_wait_for_collect_and_retry(runtime: Runtime) -> None:
    runtime.simulator().add_rule(Rule("^greet", reply="hello from the subagent", latency=1.0))

    handle = api.spawn("greet the user", tools=[], metadata={"name": "greeter"}, runtime=runtime)
    with pytest.raises(TaskNotReady, match=r"\.wait\(\)"):
        handle.result()
    ended = handle.wait(60)
    result = handle.result()

    assert ended.state == "completed" and ended.title == "greeter"
    assert result.answer == "hello from the subagent"
    assert result.summary.turns == 1 and result.summary.tokens_used > 0
    assert handle.status().state == "read"
    with pytest.raises(TaskStateError, match="only a failed, cancelled or interrupted"):
        handle.retry()


def test_a_cancelled_task_has_no_result_and_its_retry_runs_it_again(runtime: Runtime) -> None:
    runtime.simulator().add_rule(Rule("^stall", reply="late", latency=60))
    handle = api.spawn("stall a while", tools=[], runtime=runtime)

    handle.cancel()
    ended = handle.wait(30)
    with pytest.raises(TaskFailed, match=r"cancelled .*\.retry\(\)"):
        handle.result()
    runtime.simulator().clear_rules()  # the model answers at once this time
    again = handle.retry()

    assert ended.state == "cancelled"
    assert again.wait(60).state == "completed"
    assert again.status().retry_of == handle.task_id


def test_subagents_do_not_become_the_chat_a_bare_call_means(runtime: Runtime) -> None:
    agent = api.new_agent(runtime=runtime)
    runtime.engine.run(agent.run("hello"))
    handle = api.spawn("background work", tools=[], runtime=runtime)
    handle.wait(60)

    assert runtime.last_chat_id == agent.chat_id
    assert "spawn_subagent" in agent.tools  # every kernel agent gets the subagent tools


def test_a_kernel_shutting_down_leaves_its_unfinished_tasks_interrupted(
    runtime: Runtime,
) -> None:
    config.update(background_max_concurrent=1)
    runtime.simulator().add_rule(Rule("^endless", reply="never", latency=60))
    running = api.spawn("endless one", tools=[], runtime=runtime)
    waiting = api.spawn("endless two", tools=[], runtime=runtime)
    path = runtime.store.path

    runtime.shutdown()

    store = Store(path)
    try:
        with store.db.connection() as con:
            found = con.execute("SELECT id, state, error FROM tasks").fetchall()
    finally:
        store.close()
    rows = {task_id: (state, error) for task_id, state, error in found}
    assert rows[running.task_id][0] == "interrupted"
    assert rows[waiting.task_id] == ("interrupted", "the kernel shut down before it started")


def test_the_background_settings_come_from_the_environment_and_config() -> None:
    settings = config.from_environment(
        {"BACKGROUND_MAX_CONCURRENT": "7", "BACKGROUND_POLL_INTERVAL_S": "0.5"}
    )
    assert (settings.background_max_concurrent, settings.background_poll_interval_s) == (7, 0.5)
    assert config.update(background_max_concurrent=50).background_max_concurrent == 50
    with pytest.raises(ConfigError, match="background_max_concurrent"):
        config.update(background_max_concurrent=0)
    with pytest.raises(ConfigError, match="background_poll_interval_s"):
        config.update(background_poll_interval_s="soon")


def test_a_version_1_database_gets_the_tasks_columns_and_keeps_cancel_requests(
    tmp_path: Path,
) -> None:
    path = tmp_path / "boonb.duckdb"
    shutil.copyfile(V1, path)
    store = Store(path)  # migrates it
    task_id = uuid.uuid4()
    now = datetime.now(UTC)
    row = task_rows.owner_row(
        {
            "id": task_id,
            "type": "background_subagent",
            "state": "running",
            "title": "t",
            "payload": {"prompt": "p"},
            "progress": {"turn": 1, "max_turns": 3},
            "owner": "elsewhere",
            "created_at": now,
            "updated_at": now,
        }
    )
    try:
        store.writer.enqueue(row)
        assert store.writer.flush(30)
        assert task_rows.request_cancel(store.db, task_id, now=now)
        store.writer.enqueue(row)  # the owner writes again: the request must survive
        assert store.writer.flush(30)
        stored = task_rows.load(store.db, task_id)
    finally:
        store.close()
    assert stored is not None
    assert stored.update.cancel_requested and stored.update.attempt == 1
    assert stored.update.progress is not None and stored.update.progress.max_turns == 3
    con = duckdb.connect(str(path), read_only=True)
    try:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'tasks'"
            ).fetchall()
        )
    finally:
        con.close()
    assert types["progress"] == "JSON"
    assert {"parent_trace_id", "retry_of", "owner_pid", "cancel_requested"} <= set(types)


def test_the_owner_never_writes_cancel_requested() -> None:
    with pytest.raises(ValueError, match="never writes it"):
        task_rows.owner_row({"id": uuid.uuid4(), "cancel_requested": False})
    assert json.loads(task_rows.owner_row({"id": uuid.uuid4(), "payload": {"a": 1}}).values[1]) == {
        "a": 1
    }


def test_a_spawned_subagent_sends_its_images_and_the_task_row_holds_only_references(
    runtime: Runtime,
) -> None:
    import base64
    import hashlib
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), "green").save(out, "PNG")
    png = out.getvalue()
    handle = api.spawn("describe the plot", images={"plot.png": png}, tools=[], runtime=runtime)
    ended = handle.wait(60)

    assert ended.state == "completed"
    [request] = [r for r in runtime.simulator().requests if "describe the plot" in json.dumps(r)]
    [image] = [
        part
        for message in request["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1]) == png
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        [(payload,)] = con.execute(
            "SELECT CAST(payload AS VARCHAR) FROM tasks WHERE id = ?", [handle.task_id]
        ).fetchall()
    [stored] = json.loads(payload)["images"]
    assert stored["sha256"] == hashlib.sha256(png).hexdigest() and stored["name"] == "plot.png"
    assert "data:" not in payload and base64.b64encode(png).decode()[:40] not in payload
