"""The cell views in side panels: their requests and frames over REST, through a real server.

A kernel's runtime in the test process writes the project database (real agents on the
simulator, real background tasks and workflow runs, the real writer); the same requests go
to the cell widget's ``answer`` and to ``POST /boonb/api/views/{view}``, and must read the
same. Frames are polled as a panel polls them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from boonb import api, config
from boonb.frames import WorkflowLog, WorkflowStatus, WorkflowStep
from boonb.runtime import Runtime
from boonb.server import views_tasks
from boonb.server.database import ProjectDatabase
from boonb.server.views import ProjectViews, ViewFrames, ViewRequest
from boonb.server.views_runs import MAX_NEW_RUNS
from boonb.sim import Rule
from boonb.store import Database, InvalidCursor, Store
from boonb.store.rows import Row, log_row, step_row
from boonb.store.tasks import owner_row
from boonb.store.view_changes import MAX_CHANGES
from boonb.store.workflow_runs import run_row
from boonb.widgets.chat_protocol import ImageRequest
from boonb.widgets.images import read_image
from boonb.widgets.orchestrator import Orchestrator
from boonb.widgets.tasks import TasksPane
from boonb.widgets.traceviewer import TraceViewer
from tests.background_kit import Kit, make_kit
from tests.test_attachments_agent import png
from tests.test_server import TOKEN
from tests.test_server_lists import Served, dead_pid, jupyter_server
from tests.test_workflow_tree import workflow_runtime

pytestmark = pytest.mark.slow

POLL_S = 0.1
SCRIPT = 'log("go")\nresult = agent("a", prompt="p").run("read the notes")'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("views")
    project = base / "project"
    project.mkdir()
    Database(project / ".boonb" / "boonb.duckdb").close()  # the project has a database
    # Kernels in the test write while it reads: wait for them as a real server would.
    with jupyter_server(base, project, lock_timeout=10) as served:
        yield served


def _on_server_db(server: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOONB_PROJECT", str(server.project))
    monkeypatch.setenv("BOONB_DB_PATH", str(server.db_path))
    config.reset()
    config.update(background_poll_interval_s=POLL_S)


@pytest.fixture
def runtime(server: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A kernel's runtime in the test process, on the server's project and database."""
    _on_server_db(server, monkeypatch)
    yield from workflow_runtime()


@pytest.fixture
def kit(server: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kit]:
    """A kernel's task service (with a ``gate`` tool) on the server's database."""
    _on_server_db(server, monkeypatch)
    yield from make_kit()


def _ask(server: Served, view: str, target: dict[str, Any], request: Any) -> list[dict[str, Any]]:
    with server.client() as client:
        response = client.post(
            f"/boonb/api/views/{view}", json={"target": target, "request": request}
        )
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()["replies"]
    return replies


def _poll(
    server: Served, view: str, target: dict[str, Any] | None, after: str | None = None
) -> dict[str, Any]:
    params = {} if target is None else {"target": json.dumps(target)}
    if after is not None:
        params["after"] = after
    with server.client() as client:
        response = client.get(f"/boonb/api/views/{view}/frames", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _kernel(widget: Any, request: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = widget.answer(request).model_dump(mode="json")
    return answer


def _without(message: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in fields}


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    return error


# -- the trace viewer ------------------------------------------------------------------------


def test_trace_viewer_requests_read_as_the_cell_widget_answers_them(
    server: Served, runtime: Runtime
) -> None:
    agent = api.new_agent(runtime=runtime)
    runtime.engine.run(agent.run("read the notes"))
    runtime.engine.run(agent.run("and again, read the notes"))
    runtime.store.writer.flush()
    chat = agent.chat_id
    widget = TraceViewer(chat, runtime=runtime)
    try:
        first = _kernel(widget, {"kind": "page", "request_id": "p1", "limit": 2})
        tool = next(t for t in first["traces"] if t["kind"] == "tool")
        requests = [
            {"kind": "page", "request_id": "p1", "limit": 2},
            {"kind": "page", "request_id": "p2", "cursor": first["next_cursor"], "limit": 200},
            {"kind": "cache", "request_id": "c"},
            {"kind": "turns", "request_id": "t", "turn_numbers": [1, 0, 1]},
            {"kind": "detail", "request_id": "d", "trace_id": tool["id"]},
            {"kind": "detail", "request_id": "x", "trace_id": str(uuid.uuid4())},
            {"kind": "page", "request_id": "bad", "limit": 0},
            {"kind": "nonsense"},
        ]
        for request in requests:
            kernel = _kernel(widget, request)
            assert _ask(server, "traceviewer", {"chat_id": str(chat)}, request) == [kernel]
    finally:
        widget.close()
    assert first["traces"] and tool["tool_name"] == "read_file"


def test_trace_frames_after_a_cursor_bring_the_new_calls_with_their_turns_figures(
    server: Served, runtime: Runtime
) -> None:
    agent = api.new_agent(runtime=runtime)
    runtime.engine.run(agent.run("read the notes"))
    runtime.store.writer.flush()
    chat = agent.chat_id
    target = {"chat_id": str(chat)}
    start = _poll(server, "traceviewer", target)
    before = _trace_rows(runtime, chat)
    runtime.engine.run(agent.run("read the notes once more"))
    runtime.store.writer.flush()

    after = _poll(server, "traceviewer", target, start["cursor"])
    again = _poll(server, "traceviewer", target, after["cursor"])

    assert start["frames"] == [] and start["live"] is False  # the chat has ended its turn
    rows = _trace_rows(runtime, chat)
    frames = after["frames"]
    shown = [(f["frame"]["trace"]["id"], f["frame"]["trace"]["kind"]) for f in frames]
    assert shown == [row for row in rows if row not in before]
    assert {f["frame"]["type"] for f in frames} == {"model_call:complete", "tool_trace:complete"}
    numbers = sorted({f["frame"]["trace"]["turn_number"] for f in frames})
    widget = TraceViewer(chat, runtime=runtime)
    try:
        asked = {"kind": "turns", "request_id": "t", "turn_numbers": numbers}
        figures = _kernel(widget, asked)["turns"]
    finally:
        widget.close()
    by_turn = dict(zip(numbers, figures, strict=True))
    assert all(f["turn"] == by_turn[f["frame"]["trace"]["turn_number"]] for f in frames)
    assert again["frames"] == [] and again["cursor"] == after["cursor"]


def test_a_chat_saved_running_by_a_dead_kernel_reads_interrupted_and_stops_the_polling(
    server: Served,
) -> None:
    chat, session = uuid.uuid4(), uuid.uuid4()
    db = Database(server.db_path)
    try:
        with db.connection() as con:
            con.execute(
                "INSERT INTO chats (id, title, created_at) VALUES (?, 'orphan', ?)",
                [chat, datetime.now(UTC)],
            )
            con.execute(
                "INSERT INTO agent_sessions VALUES (?, ?, NULL, 'in_progress', ?, ?, ?)",
                [
                    session,
                    chat,
                    json.dumps({"state": "in_progress"}),
                    dead_pid(),
                    datetime.now(UTC),
                ],
            )
    finally:
        db.close()
    with server.client() as client:
        before = client.get("/boonb/api/activity").json()
    polled = _poll(server, "traceviewer", {"chat_id": str(chat)})
    with server.client() as client:
        listed = client.get("/boonb/api/chats", params={"search": "orphan"}).json()["chats"]

    assert polled["live"] is False
    assert [c["state"] for c in listed] == ["interrupted"]
    assert before["chats_running"] == 0  # counted as interrupted even before it was marked


def _trace_rows(runtime: Runtime, chat: uuid.UUID) -> list[tuple[str, str]]:
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows = con.execute(
            "SELECT id::VARCHAR, kind FROM tool_traces WHERE chat_id = ? ORDER BY rowid", [chat]
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


# -- the tasks pane --------------------------------------------------------------------------


def test_tasks_requests_read_as_the_cell_pane_answers_them(
    server: Served, runtime: Runtime
) -> None:
    handle = api.spawn("read the notes", runtime=runtime)
    handle.wait(60)
    runtime.store.writer.flush()
    task = handle.status()
    pane = TasksPane(runtime=runtime)
    try:
        listed = {"kind": "list", "request_id": "l", "limit": 500}
        kernel = _kernel(pane, listed)
        served = _ask(server, "tasks", {}, listed)
        assert [_without(m, "seq", "owner", "now") for m in served] == [
            _without(kernel, "seq", "owner", "now")
        ]
        assert served[0]["owner"] == "" and served[0]["seq"] > 0
        traces = {"kind": "traces", "request_id": "t", "task_id": str(task.task_id)}
        kernel = _kernel(pane, traces)
        (served_traces,) = _ask(server, "tasks", {}, traces)
        assert _without(served_traces, "widget") == _without(kernel, "widget")
        assert served_traces["widget"] == str(task.chat_id)  # the panel's host renders a chat
        result = {"kind": "result", "request_id": "r", "task_id": str(task.task_id)}
        assert _ask(server, "tasks", {}, result) == [_kernel(pane, result)]
        for bad in (
            {"kind": "cancel", "request_id": "c", "task_id": str(task.task_id)},  # it ended
            {"kind": "result", "request_id": "u", "task_id": str(uuid.uuid4())},
            {"kind": "list", "request_id": "b", "limit": 0},
        ):
            (reply,) = _ask(server, "tasks", {}, bad)
            assert (reply["kind"], reply["request_id"]) == ("error", bad["request_id"])
    finally:
        pane.close()


def test_a_cancel_from_the_tasks_panel_reads_cancelling_until_the_frames_bring_the_owners_outcome(
    server: Served, kit: Kit
) -> None:
    kit.sim.add_rule(Rule("^held", tool_calls=[{"name": "gate", "arguments": {"name": "g"}}]))
    task = kit.tasks.spawn("held job", tools=["gate"]).task_id
    kit.until(
        lambda: (u := kit.latest(task)) and u.progress and u.progress.last_tool,
        "the subagent to wait in its gate",
    )
    kit.store.writer.flush()
    start = _poll(server, "tasks", None)
    with server.client() as client:
        activity = client.get("/boonb/api/activity").json()
    chat = {"chat_id": str(kit.latest(task).chat_id)}  # type: ignore[union-attr]
    chat_running = _poll(server, "traceviewer", chat)

    (asked,) = _ask(
        server, "tasks", {}, {"kind": "cancel", "request_id": "c", "task_id": str(task)}
    )
    kit.until_state(task, "cancelled")
    kit.store.writer.flush()
    after = _poll(server, "tasks", None, start["cursor"])
    settled = _poll(server, "tasks", None, after["cursor"])
    chat_ended = _poll(server, "traceviewer", chat, chat_running["cursor"])

    assert start["live"] is True and start["frames"] == []
    assert activity["tasks_running"] >= 1
    assert asked["kind"] == "task" and asked["task"]["cancel_requested"] is True
    assert asked["task"]["state"] == "running"  # the pane shows "cancelling…" meanwhile
    mine = [f for f in after["frames"] if f["frame"]["task_id"] == str(task)]
    assert mine and mine[-1]["frame"]["state"] == "cancelled"
    assert mine[-1]["frame"]["cancel_requested"] is False
    assert all(f["kind"] == "frame" and f["seq"] > 0 for f in after["frames"])
    assert after["live"] is False and settled["frames"] == []
    assert (chat_running["live"], chat_ended["live"]) == (True, False)


# -- the orchestrator ------------------------------------------------------------------------


def test_orchestrator_requests_read_as_the_cell_widget_answers_them_and_runs_need_a_kernel(
    server: Served, runtime: Runtime
) -> None:
    manager = runtime.workflows
    start = _poll(server, "orchestrator", {"run_id": None})
    run = manager.run_script(SCRIPT, timeout=120)
    manager.wait(run, timeout=60)
    runtime.store.writer.flush()
    widget = Orchestrator(runtime=runtime)
    try:
        for request in (
            {"kind": "workflows", "request_id": "w"},
            {"kind": "validate", "request_id": "v", "workflow": "nope", "args": {}},
        ):
            assert _ask(server, "orchestrator", {"run_id": None}, request) == [
                _kernel(widget, request)
            ]
        runs = {"kind": "runs", "request_id": "r", "limit": 5}
        (served,) = _ask(server, "orchestrator", {"run_id": None}, runs)
        assert _without(served, "now", "session_id") == _without(
            _kernel(widget, runs), "now", "session_id"
        )
        opened = {"kind": "open", "request_id": "o", "run_id": str(run)}
        (served,) = _ask(server, "orchestrator", {"run_id": str(run)}, opened)
        kernel = _kernel(widget, opened)
        assert _without(served["run"], "live") == _without(kernel["run"], "live")
        step = served["run"]["steps"][0]
        traces = {"kind": "traces", "request_id": "a", "chat_id": step["chat_id"]}
        (served,) = _ask(server, "orchestrator", {"run_id": None}, traces)
        assert served["widget"] == step["chat_id"]
        assert _without(served, "widget") == _without(_kernel(widget, traces), "widget")
    finally:
        widget.close()
    (refused,) = _ask(
        server,
        "orchestrator",
        {"run_id": None},
        {"kind": "run", "request_id": "s", "workflow": "summarize", "args": {}},
    )
    (again,) = _ask(
        server,
        "orchestrator",
        {"run_id": None},
        {"kind": "rerun", "request_id": "x", "run_id": str(run)},
    )
    after = _poll(server, "orchestrator", {"run_id": None}, start["cursor"])

    assert refused["kind"] == "error" and refused["request_id"] == "s"
    assert "needs a kernel: run `%workflow run summarize` in a notebook" in refused["message"]
    assert again["kind"] == "error" and "%workflow run <cell>" in again["message"]
    (message,) = after["frames"]
    types = [f["type"] for f in message["frames"]]
    assert message["kind"] == "frames" and {
        "workflow:status",
        "workflow:step",
        "workflow:log",
    } <= set(types)
    statuses = [f for f in message["frames"] if f["type"] == "workflow:status"]
    assert statuses[-1]["run_id"] == str(run) and statuses[-1]["state"] == "completed"
    assert after["live"] is False


def test_a_run_pane_polls_its_runs_new_log_lines_only(server: Served, runtime: Runtime) -> None:
    manager = runtime.workflows
    run = manager.run_script(SCRIPT, timeout=120)
    manager.wait(run, timeout=60)
    runtime.store.writer.flush()
    target = {"run_id": str(run)}
    start = _poll(server, "orchestrator", target)
    again = _poll(server, "orchestrator", target, start["cursor"])
    last = _last_log_seq(runtime, run)
    # Lines stored after the cursor (as a kernel's writer stores a run's lines).
    for seq in (last + 1, last + 2):
        runtime.store.writer.enqueue(log_row(_log(run, seq, f"line {seq}")))
    runtime.store.writer.flush()
    later = _poll(server, "orchestrator", target, again["cursor"])
    after = _poll(server, "orchestrator", target, later["cursor"])

    assert start["frames"] == [] and start["live"] is False
    assert again["frames"] == []
    (message,) = later["frames"]
    logs = [(f["seq"], f["message"]) for f in message["frames"] if f["type"] == "workflow:log"]
    assert logs == [(last + 1, f"line {last + 1}"), (last + 2, f"line {last + 2}")]
    assert after["frames"] == []


def _last_log_seq(runtime: Runtime, run: uuid.UUID) -> int:
    with runtime.store.db.connection() as con:
        row = con.execute(
            "SELECT coalesce(max(seq), 0) FROM workflow_logs WHERE run_id = ?", [run]
        ).fetchone()
    return int(row[0]) if row else 0


def _log(run: uuid.UUID, seq: int, message: str) -> WorkflowLog:
    return WorkflowLog(run_id=run, message=message, at=datetime.now(UTC), seq=seq)


# -- refusals --------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/boonb/api/activity"),
    ("GET", "/boonb/api/views/tasks/frames"),
    ("POST", "/boonb/api/views/tasks"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_views_endpoint_refuses_a_request_without_a_token(
    server: Served, method: str, path: str
) -> None:
    body = {"target": {}, "request": {"kind": "list", "request_id": "l"}}
    with server.client(None) as client:
        response = client.request(method, path, json=body if method == "POST" else None)
    assert response.status_code == 403
    assert "replies" not in response.text and "frames" not in response.text


def test_a_views_post_without_the_xsrf_token_is_403_and_with_it_answers(server: Served) -> None:
    body = {"target": {}, "request": {"kind": "list", "request_id": "l"}}
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        browser.get("/login")
        browser.post("/login", data={"password": TOKEN, "_xsrf": browser.cookies["_xsrf"]})
        refused = browser.post("/boonb/api/views/tasks", json=body)
        xsrf = {"X-XSRFToken": browser.cookies["_xsrf"]}
        answered = browser.post("/boonb/api/views/tasks", json=body, headers=xsrf)
    assert refused.status_code == 403
    assert answered.status_code == 200 and answered.json()["replies"][0]["kind"] == "list"


def test_bad_views_targets_bodies_and_cursors_are_400_and_unknown_ones_404(
    server: Served, runtime: Runtime
) -> None:
    agent = api.new_agent(runtime=runtime)
    runtime.engine.run(agent.run("hello"))
    runtime.store.writer.flush()
    mine = {"chat_id": str(agent.chat_id)}
    cursor = _poll(server, "traceviewer", mine)["cursor"]
    tasks_cursor = _poll(server, "tasks", None)["cursor"]
    page = {"kind": "page", "request_id": "p"}
    with server.client() as client:
        post = lambda view, body: client.post(f"/boonb/api/views/{view}", json=body)  # noqa: E731
        get = lambda view, **params: client.get(f"/boonb/api/views/{view}/frames", params=params)  # noqa: E731
        cases = [
            (post("nope", {"target": {}, "request": page}), 404, "UnknownView"),
            (get("nope"), 404, "UnknownView"),
            (
                post("traceviewer", {"target": {"chat_id": "x"}, "request": page}),
                400,
                "InvalidTarget",
            ),
            (post("traceviewer", {"target": {}, "request": page}), 400, "InvalidTarget"),
            (
                post("tasks", {"target": {"chat_id": str(uuid.uuid4())}, "request": page}),
                400,
                "InvalidTarget",
            ),
            (post("tasks", {"request": page}), 400, "InvalidQuery"),
            (client.post("/boonb/api/views/tasks", content=b"not json"), 400, "InvalidQuery"),
            (
                post("traceviewer", {"target": {"chat_id": str(uuid.uuid4())}, "request": page}),
                404,
                "ChatNotFound",
            ),
            (
                get("traceviewer", target=json.dumps({"chat_id": str(uuid.uuid4())})),
                404,
                "ChatNotFound",
            ),
            (
                get("orchestrator", target=json.dumps({"run_id": str(uuid.uuid4())})),
                404,
                "RunNotFound",
            ),
            (get("traceviewer", target="{not json"), 400, "InvalidTarget"),
            (
                get("traceviewer", target=json.dumps(mine), after=cursor[:-3] + "AAA"),
                400,
                "InvalidCursor",
            ),
            (get("traceviewer", target=json.dumps(mine), after="garbage"), 400, "InvalidCursor"),
            (get("tasks", after=cursor), 400, "InvalidCursor"),  # another view's cursor
            (get("traceviewer", target=json.dumps(mine), after=tasks_cursor), 400, "InvalidCursor"),
            (get("tasks", since="1"), 400, "InvalidQuery"),
            (client.get("/boonb/api/activity", params={"x": "1"}), 400, "InvalidQuery"),
        ]
    problems = [
        (i, r.status_code, r.text[:200])
        for i, (r, status, kind) in enumerate(cases)
        if r.status_code != status or r.json()["error"]["type"] != kind
    ]
    assert problems == []
    assert "chat_id" in cases[3][0].json()["error"]["message"]  # says what the target takes


@pytest.mark.parametrize(
    ("method", "path"),
    [*ENDPOINTS, ("GET", "/boonb/api/views/traceviewer/frames")],
)
def test_a_database_held_past_the_timeout_is_503_with_retry_after(
    tmp_path_factory: pytest.TempPathFactory, method: str, path: str
) -> None:
    base = tmp_path_factory.mktemp("views-locked")
    project = base / "project"
    project.mkdir()
    Database(project / ".boonb" / "boonb.duckdb").close()
    chat = uuid.uuid4()
    body = {"target": {}, "request": {"kind": "list", "request_id": "l"}}
    params = {"target": json.dumps({"chat_id": str(chat)})} if "traceviewer" in path else {}
    with jupyter_server(base, project, lock_timeout=0.3) as server:
        holder = Database(server.db_path, linger=60)  # another process's lingering handle
        try:
            with holder.connection():
                pass
            with server.client() as client:
                response = client.request(
                    method, path, json=body if method == "POST" else None, params=params
                )
        finally:
            holder.close()
    assert _error(response, 503)["type"] == "DatabaseLocked"
    assert int(response.headers["retry-after"]) > 0


def test_every_endpoint_of_a_server_reads_through_one_database(server: Served) -> None:
    # The activity poll, a tasks frames poll and the lists in the same second share one
    # database (and so its lingering handle) rather than each opening the file for itself.
    with server.client() as client:
        for path, params in [
            ("/boonb/api/activity", {}),
            ("/boonb/api/views/tasks/frames", {}),
            ("/boonb/api/chats", {}),
            ("/boonb/api/tasks", {}),
            ("/boonb/api/orchestrator/runs", {}),
            (f"/boonb/api/traces/{uuid.uuid4()}", {}),
            ("/boonb/api/views/orchestrator/frames", {"target": json.dumps({"run_id": None})}),
        ]:
            assert client.get(path, params=params).status_code in (200, 404), path
    log = (server.project.parent / "server.log").read_text()
    assert log.count("boonb: opened the project database") == 1, log


def test_importing_the_server_extension_loads_no_widget_library() -> None:
    code = (
        "import sys, boonb.server; "
        "print(sorted(m for m in ('anywidget', 'ipywidgets') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert loaded.stdout.strip() == "[]"


def test_a_panels_trace_viewer_gets_a_stored_image_and_its_thumbnail_as_a_kernel_reads_them(
    server: Served, runtime: Runtime
) -> None:
    store = api.attachments(runtime)
    ref = store.add_bytes(png((1200, 800)), name="chart.png")
    query = {
        "mime": ref.mime,
        "size_bytes": ref.size_bytes,
        "width": ref.width,
        "height": ref.height,
    }
    with server.client() as client:
        full = client.get(f"/boonb/api/attachments/{ref.sha256}", params=query)
        thumb = client.get(
            f"/boonb/api/attachments/{ref.sha256}", params={**query, "max_width": 600}
        )
        missing = client.get(f"/boonb/api/attachments/{'0' * 64}", params=query)
        bad = client.get(f"/boonb/api/attachments/{ref.sha256}", params={**query, "mime": "x"})
        # Sizes a view never asks for (each would be a cached file), and a reference that
        # claims other pixels than the file's (echoed back, or shaping a cached thumbnail).
        odd_width = client.get(
            f"/boonb/api/attachments/{ref.sha256}", params={**query, "max_width": 123}
        )
        claimed = [
            client.get(f"/boonb/api/attachments/{ref.sha256}", params={**query, **lie})
            for lie in ({"width": 40}, {"height": 4000, "max_width": 600}, {"size_bytes": 1})
        ]
    with server.client(None) as anonymous:
        refused = anonymous.get(f"/boonb/api/attachments/{ref.sha256}", params=query)
    kernel = ImageRequest(kind="image", request_id="i", attachment=ref, max_width=600)
    reply, [kernel_bytes] = read_image(store, kernel)

    assert full.status_code == 200 and full.content == store.read(ref)
    assert full.headers["content-type"] == "image/png"
    assert thumb.content == kernel_bytes
    assert (thumb.headers["x-image-width"], thumb.headers["x-image-height"]) == (
        str(reply.width),  # type: ignore[union-attr]
        str(reply.height),  # type: ignore[union-attr]
    )
    assert _error(missing, 404)["type"] == "ImageNotFound"
    assert _error(bad, 400)["type"] == "InvalidImage"
    assert refused.status_code == 403
    assert (full.headers["x-image-width"], full.headers["x-image-height"]) == ("1200", "800")
    assert "600" in _error(odd_width, 400)["message"]
    assert [_error(r, 400)["type"] for r in claimed] == ["InvalidImage"] * 3
    assert "1200 x 800" in claimed[0].json()["error"]["message"]


# -- cursors: bounded, and nothing missed --------------------------------------------------
#
# The views' frames read from the project database as the handler does (ProjectViews), with
# rows written as kernels write them: through a store's writer, or by the statements that
# mark a dead kernel's rows.


@dataclass
class Project:
    store: Store
    views: ProjectViews

    def write(self, *rows: Row) -> None:
        for row in rows:
            self.store.writer.enqueue(row)
        self.store.writer.flush()

    def poll(self, view: str, target: dict[str, Any] | None, after: str | None) -> ViewFrames:
        return self.views.frames(view, None if target is None else json.dumps(target), after)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    path = tmp_path / ".boonb" / "boonb.duckdb"
    store = Store(path)
    try:
        yield Project(store, ProjectViews(tmp_path, ProjectDatabase(path, lock_timeout=10)))
    finally:
        store.close()


def _task_row(*, pid: int, updated_at: datetime | None = None, state: str = "running") -> Row:
    now = datetime.now(UTC)
    return owner_row({
        "id": uuid.uuid4(), "type": "background_subagent", "state": state, "title": "t",
        "owner": "a-kernel", "owner_pid": pid, "owner_host": socket.gethostname(),
        "attempt": 1, "payload": {"prompt": "p"}, "created_at": now, "started_at": now,
        "updated_at": updated_at or now,
    })  # fmt: skip


def _frames_of(polled: ViewFrames) -> list[dict[str, Any]]:
    return [frame for frame in polled.frames if isinstance(frame, dict)]


def test_many_task_rows_changed_by_one_statement_come_over_polls_and_a_later_change_after(
    project: Project,
) -> None:
    dead = dead_pid()
    start = project.poll("tasks", None, None)
    rows = [_task_row(pid=dead) for _ in range(MAX_CHANGES + 100)]
    project.write(*rows)
    # The first poll marks every task of the dead kernel interrupted, in one statement.
    first = project.poll("tasks", None, start.cursor)
    second = project.poll("tasks", None, first.cursor)
    project.write(_task_row(pid=os.getpid()))
    third = project.poll("tasks", None, second.cursor)

    assert len(first.frames) == MAX_CHANGES and first.live is True  # more to read
    sent = [f["frame"] for f in _frames_of(first) + _frames_of(second)]
    assert sorted(f["task_id"] for f in sent) == sorted(str(r.values[0]) for r in rows)
    assert {f["state"] for f in sent} == {"interrupted"}
    assert second.live is False
    assert [f["frame"]["state"] for f in _frames_of(third)] == ["running"] and third.live
    assert len(third.cursor) < 200  # one number, however many rows changed


def test_a_task_change_the_writer_stores_a_minute_late_still_comes(project: Project) -> None:
    project.write(_task_row(pid=os.getpid()))
    start = project.poll("tasks", None, None)
    # The owner changed it a minute ago; its writer could only store it now (a held file).
    late = _task_row(pid=os.getpid(), updated_at=datetime.now(UTC) - timedelta(minutes=1))
    project.write(late)
    polled = project.poll("tasks", None, start.cursor)

    assert [f["frame"]["task_id"] for f in _frames_of(polled)] == [str(late.values[0])]


def test_the_owners_update_of_a_task_row_comes_even_when_it_is_stamped_earlier(
    project: Project,
) -> None:
    row = _task_row(pid=os.getpid())
    project.write(row)
    start = project.poll("tasks", None, None)
    # The owner's next write of the same row (an upsert through its writer), stored late.
    values = dict(zip(row.columns, row.values, strict=True))
    done = {
        **values,
        "state": "completed",
        "updated_at": values["updated_at"] - timedelta(minutes=1),
    }
    project.write(owner_row({k: v for k, v in done.items() if k != "payload"}))
    polled = project.poll("tasks", None, start.cursor)

    assert [f["frame"]["state"] for f in _frames_of(polled)] == ["completed"]


def test_a_tasks_frame_after_a_page_carries_a_later_seq_than_the_page(project: Project) -> None:
    row = _task_row(pid=os.getpid())
    project.write(row)
    start = project.poll("tasks", None, None)
    (page,) = project.views.answer(
        "tasks", ViewRequest(target={}, request={"kind": "list", "request_id": "l"})
    ).replies
    late = _task_row(pid=os.getpid(), updated_at=datetime.now(UTC) - timedelta(minutes=1))
    project.write(late)
    (frame,) = _frames_of(project.poll("tasks", None, start.cursor))

    # The pane keeps a frame's counts only if its seq is not older than the page's.
    assert isinstance(page, dict) and frame["seq"] > page["seq"]
    assert frame["total"] == 2


def test_a_list_asked_with_frames_answers_a_cursor_from_before_its_read(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel stores a task change just after the page's read, before anything else: the
    # cursor answered with the page was taken before the read, so the next poll brings it.
    read = views_tasks.answer
    late = _task_row(pid=os.getpid())

    def read_then_a_kernel_writes(db: Any, content: Any) -> Any:
        replies = read(db, content)
        project.write(late)
        return replies

    monkeypatch.setattr(views_tasks, "answer", read_then_a_kernel_writes)
    asked = ViewRequest(target={}, request={"kind": "list", "request_id": "l"}, frames=True)
    answered = project.views.answer("tasks", asked)
    assert answered.frames is not None and answered.frames.frames == []
    (page,) = answered.replies
    polled = project.poll("tasks", None, answered.frames.cursor)

    assert isinstance(page, dict) and page["tasks"] == []
    assert [f["frame"]["task_id"] for f in _frames_of(polled)] == [str(late.values[0])]


def test_a_request_without_frames_answers_no_cursor(project: Project) -> None:
    asked = ViewRequest(target={}, request={"kind": "list", "request_id": "l"})
    assert project.views.answer("tasks", asked).frames is None


def test_cursor_0_is_refused_once_the_database_exists(tmp_path: Path) -> None:
    path = tmp_path / ".boonb" / "boonb.duckdb"
    views = ProjectViews(tmp_path, ProjectDatabase(path, lock_timeout=10))
    before = views.frames("tasks", None, None)
    Store(path).close()  # a kernel creates the database
    with pytest.raises(InvalidCursor):
        views.frames("tasks", None, "0")
    with pytest.raises(InvalidCursor):
        views.frames("orchestrator", json.dumps({"run_id": None}), "0")

    assert before.cursor == "0" and before.live is False


def _run(project: Project, run: uuid.UUID, state: str, *, steps: list[WorkflowStep]) -> None:
    now = datetime.now(UTC)
    status = WorkflowStatus(run_id=run, workflow="triage", state=state, started_at=now)  # type: ignore[arg-type]
    project.write(
        run_row(
            status, args={}, result=None, session_id=uuid.uuid4(), kernel_pid=os.getpid(),
            created_at=now,
        ),
        *[step_row(step) for step in steps],
    )  # fmt: skip


def _step(run: uuid.UUID, index: int, state: str = "started") -> WorkflowStep:
    return WorkflowStep(
        run_id=run, agent_id="a", state=state, trace_id=uuid.uuid5(run, str(index)),  # type: ignore[arg-type]
        label=f"a #{index}", call_index=index, index=index,
    )  # fmt: skip


def test_a_poll_while_a_run_runs_sends_what_changed_with_a_cursor_of_one_entry_a_run(
    project: Project,
) -> None:
    run = uuid.uuid4()
    steps = [_step(run, i) for i in range(1, 2001)]
    _run(project, run, "running", steps=steps)
    start = project.poll("orchestrator", {"run_id": None}, None)
    quiet = project.poll("orchestrator", {"run_id": None}, start.cursor)
    project.write(step_row(_step(run, 7, "completed")), log_row(_log(run, 1, "seven done")))
    changed = project.poll("orchestrator", {"run_id": None}, quiet.cursor)
    _run(project, run, "completed", steps=[])
    ended = project.poll("orchestrator", {"run_id": None}, changed.cursor)

    assert quiet.frames == [] and quiet.live is True
    (message,) = _frames_of(changed)
    types = {f["type"] for f in message["frames"]}
    assert "workflow:status" not in types  # the status did not change
    step = next(f for f in message["frames"] if f.get("label") == "a #7")
    assert step["state"] == "completed"
    assert [f["message"] for f in message["frames"] if f["type"] == "workflow:log"] == [
        "seven done"
    ]
    assert changed.live is True and len(changed.cursor) < 400  # not a digest per step
    (last,) = _frames_of(ended)
    assert [f["state"] for f in last["frames"]] == ["completed"] and ended.live is False


def test_an_ended_runs_log_lines_past_the_limit_come_in_the_next_poll(project: Project) -> None:
    run = uuid.uuid4()
    _run(project, run, "running", steps=[])
    start = project.poll("orchestrator", {"run_id": None}, None)
    lines = MAX_CHANGES + 100
    project.write(*[log_row(_log(run, seq, f"line {seq}")) for seq in range(1, lines + 1)])
    _run(project, run, "completed", steps=[])
    first = project.poll("orchestrator", {"run_id": None}, start.cursor)
    second = project.poll("orchestrator", {"run_id": None}, first.cursor)

    sent = [
        f["seq"]
        for message in _frames_of(first) + _frames_of(second)
        for f in message["frames"]
        if f["type"] == "workflow:log"
    ]
    assert sent == list(range(1, lines + 1))
    assert first.live is True and second.live is False


def test_a_poll_starts_watching_a_bounded_number_of_new_runs_and_the_next_takes_the_rest(
    project: Project,
) -> None:
    start = project.poll("orchestrator", {"run_id": None}, None)
    runs = [uuid.uuid4() for _ in range(2 * MAX_NEW_RUNS + 5)]
    for run in runs:  # each started and ended between two polls
        _run(project, run, "completed", steps=[])
    polls = [project.poll("orchestrator", {"run_id": None}, start.cursor)]
    while polls[-1].live and len(polls) < 10:
        polls.append(project.poll("orchestrator", {"run_id": None}, polls[-1].cursor))

    per_poll = [
        [f["run_id"] for m in _frames_of(p) for f in m["frames"] if f["type"] == "workflow:status"]
        for p in polls
    ]
    assert [len(ids) for ids in per_poll] == [MAX_NEW_RUNS, MAX_NEW_RUNS, 5]
    assert sorted(i for ids in per_poll for i in ids) == sorted(str(r) for r in runs)


def _chat(project: Project, state: str | None) -> uuid.UUID:
    chat = uuid.uuid4()
    with project.store.db.connection() as con:
        con.execute(
            "INSERT INTO chats (id, title, created_at) VALUES (?, 't', ?)",
            [chat, datetime.now(UTC)],
        )
        if state is not None:
            con.execute(
                "INSERT INTO agent_sessions VALUES (?, ?, NULL, ?, '{}', ?, ?)",
                [uuid.uuid4(), chat, state, os.getpid(), datetime.now(UTC)],
            )
    return chat


def test_an_ended_chats_calls_past_the_limit_come_in_the_next_poll(project: Project) -> None:
    chat = _chat(project, "completed")
    target = {"chat_id": str(chat)}
    start = project.poll("traceviewer", target, None)
    calls = MAX_CHANGES + 100
    with project.store.db.connection() as con:
        for i in range(calls):
            con.execute(
                "INSERT INTO tool_traces (id, session_id, chat_id, turn_number, kind, "
                "tool_name, started_at, outcome) VALUES (?, ?, ?, 1, 'tool', 't', ?, 'success')",
                [uuid.uuid4(), chat, chat, datetime.now(UTC) + timedelta(microseconds=i)],
            )
    first = project.poll("traceviewer", target, start.cursor)
    second = project.poll("traceviewer", target, first.cursor)

    assert len(first.frames) == MAX_CHANGES and first.live is True
    assert len(second.frames) == calls - MAX_CHANGES and second.live is False


def test_a_chat_whose_task_kernel_died_before_it_saved_stops_the_polling(
    project: Project,
) -> None:
    chat = _chat(project, None)  # a subagent's chat, not saved yet
    row = _task_row(pid=dead_pid())
    project.write(row)
    with project.store.db.connection() as con:
        con.execute("UPDATE tasks SET chat_id = ? WHERE id = ?", [chat, row.values[0]])
    polled = project.poll("traceviewer", {"chat_id": str(chat)}, None)

    assert polled.live is False


# -- the panels' REST client (labextension/src/lab/rest.ts) --------------------------------
#
# rest.ts bundled for node with esbuild, its one dependency on Lab (ServerConnection's
# makeRequest) answered by a scripted server, so each case can hold a poll out, or answer
# one as a failing server would, at the moment it needs.

LABEXTENSION = Path(__file__).parent.parent / "labextension"

_SERVICES_STUB = """
export const ServerConnection = {
  makeRequest: (url, init, settings) => globalThis.__answer(url, init, settings),
};
"""
_COREUTILS_STUB = """
export const URLExt = { join: (...parts) => parts.join("/").replace(/\\/+/g, "/") };
"""
_HARNESS = """
import { restModel } from "REST";

const gets = [];
const posts = [];
let waiting = [];
let script = () => ({ status: 200, body: { frames: [], cursor: "c", live: false } });
let postScript = () => ({ status: 200, body: { replies: [] } });
globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
globalThis.__answer = (url, init) => {
  if (init.signal?.aborted) return Promise.reject(new Error("aborted"));
  const query = new URL(url, "http://x").searchParams;
  if (init.method === "POST") {
    posts.push(JSON.parse(init.body));
    const answer = postScript(posts.length);
    return Promise.resolve(json(answer.status, answer.body));
  }
  gets.push(query.get("after"));
  const answer = script(gets.length, query.get("after"));
  for (const w of waiting.splice(0)) w();
  const reply = () => json(answer.status, answer.body, answer.headers);
  return Promise.resolve(answer.hold ?? null).then(reply);
};
function json(status, body, headers = {}) {
  headers = { "Content-Type": "application/json", ...headers };
  return new Response(JSON.stringify(body), { status, headers });
}
function getCount(n, ms) {
  return new Promise((resolve) => {
    const check = () => (gets.length >= n ? resolve(true) : waiting.push(check));
    check();
    setTimeout(() => resolve(gets.length >= n), ms);
  });
}
const frames = (cursor, live) => ({ status: 200, body: { frames: [], cursor, live } });
const error = (status, type, headers) => ({
  status, body: { error: { type, message: type } }, headers,
});
const settings = { baseUrl: "http://x/", token: "t" };
const cases = {
  async firstRequestBringsTheCursor() {
    const replies = [];
    const body = { replies: [{ kind: "list" }], frames: { frames: [], cursor: "p", live: true } };
    postScript = () => ({ status: 200, body });
    script = (n) => frames(`c${n}`, false);
    const model = restModel({ serverSettings: settings }, "tasks", {});
    model.on("msg:custom", (message) => replies.push(message.kind));
    model.send({ kind: "list", request_id: "l" });  // as the view does when it is built
    await getCount(1, 5000);
    model.dispose();
    return { posts, gets, replies };
  },
  async failedFirstRequestPollsAlone() {
    const replies = [];
    postScript = () => error(500, "Boom");
    script = (n) => frames(`c${n}`, false);
    const model = restModel({ serverSettings: settings }, "tasks", {});
    model.on("msg:custom", (message) => replies.push(message.kind));
    model.send({ kind: "list", request_id: "l" });
    await getCount(1, 5000);
    model.dispose();
    return { gets, replies };
  },
  async startDuringPoll() {
    let release;
    const held = new Promise((r) => (release = r));
    script = (n) => (n === 2 ? { ...frames("c2", false), hold: held } : frames(`c${n}`, false));
    const model = restModel({ serverSettings: settings }, "tasks", {});
    model.refresh();
    await getCount(2, 5000);
    model.refresh();  // a retry was asked while poll 2 was out
    release();
    const polledAgain = await getCount(3, 3000);
    model.dispose();
    return { polledAgain, gets };
  },
  async notFoundStops() {
    const errors = [];
    script = (n) =>
      n === 1 ? frames("c1", true) : error(404, "ChatNotFound");
    const model = restModel({ serverSettings: settings }, "traceviewer", { chat_id: "x" });
    model.on("rest:error", (e) => errors.push([e.status, e.type]));
    await getCount(2, 5000);
    const polledAgain = await getCount(3, 3500);
    model.dispose();
    return { polledAgain, errors };
  },
  async invalidCursorStartsAgain() {
    const events = [];
    script = (n, after) =>
      after === "c1" ? error(400, "InvalidCursor") : frames(`c${n}`, true);
    const model = restModel({ serverSettings: settings }, "tasks", {});
    model.on("rest:reset", () => events.push("reset"));
    model.on("rest:error", (e) => events.push(`error ${e.type}`));
    await getCount(4, 6000);
    model.dispose();
    return { gets: gets.slice(0, 4), events };
  },
  async disposeStopsA503Wait() {
    const held = error(503, "DatabaseLocked", { "Retry-After": "1" });
    script = (n) => (n === 1 ? frames("c1", true) : held);
    const model = restModel({ serverSettings: settings }, "tasks", {});
    await getCount(2, 5000);
    model.dispose();  // the panel closes while the 503 waits its Retry-After
    const sentAgain = await getCount(3, 2500);
    return { sentAgain };
  },
};
const result = await cases[process.argv[2]]();
console.log(JSON.stringify(result));
process.exit(0);
"""


@pytest.fixture(scope="module")
def rest_harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rest.ts and the harness above, bundled into one script node runs."""
    work = tmp_path_factory.mktemp("rest-ts")
    (work / "services.js").write_text(_SERVICES_STUB)
    (work / "coreutils.js").write_text(_COREUTILS_STUB)
    (work / "view.js").write_text("export class TraceView {}\n")
    rest = LABEXTENSION / "src" / "lab" / "rest.ts"
    (work / "harness.mjs").write_text(_HARNESS.replace('"REST"', json.dumps(str(rest))))
    bundler = f"""
      import {{ build }} from "esbuild";
      await build({{
        entryPoints: [{json.dumps(str(work / "harness.mjs"))}], bundle: true, format: "esm",
        platform: "node", outfile: {json.dumps(str(work / "out.mjs"))}, logLevel: "error",
        plugins: [{{ name: "stubs", setup(b) {{
          const stub = (filter, file) => b.onResolve({{ filter }}, () => ({{ path: file }}));
          stub(/^@jupyterlab\\/services$/, {json.dumps(str(work / "services.js"))});
          stub(/^@jupyterlab\\/coreutils$/, {json.dumps(str(work / "coreutils.js"))});
          stub(/traceviewer\\/view$/, {json.dumps(str(work / "view.js"))});
        }} }}],
      }});
    """
    subprocess.run(
        ["node", "--input-type=module", "-e", bundler], cwd=LABEXTENSION, check=True, timeout=120
    )
    return work / "out.mjs"


def _rest_case(harness: Path, case: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(harness), case], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_panels_first_request_brings_its_first_poll_in_one_round_trip(
    rest_harness: Path,
) -> None:
    result = _rest_case(rest_harness, "firstRequestBringsTheCursor")
    assert result["posts"] == [
        {"target": {}, "request": {"kind": "list", "request_id": "l"}, "frames": True}
    ]
    assert result["gets"][0] == "p"  # polled on from the request's cursor, no poll before
    assert result["replies"] == ["list"]


def test_a_panel_whose_first_request_fails_polls_for_its_cursor_alone(rest_harness: Path) -> None:
    result = _rest_case(rest_harness, "failedFirstRequestPollsAlone")
    assert result["gets"] == [None]
    assert result["replies"] == ["error"]


def test_a_panel_asked_to_look_while_a_poll_is_out_polls_once_more_after_it(
    rest_harness: Path,
) -> None:
    result = _rest_case(rest_harness, "startDuringPoll")
    assert result["polledAgain"] is True  # although the poll out said nothing runs
    assert result["gets"][:3] == [None, "c1", "c2"]


def test_a_panel_whose_chat_is_gone_stops_polling_and_says_so(rest_harness: Path) -> None:
    result = _rest_case(rest_harness, "notFoundStops")
    assert result == {"polledAgain": False, "errors": [[404, "ChatNotFound"]]}


def test_a_panel_whose_cursor_is_refused_starts_again_from_now(rest_harness: Path) -> None:
    result = _rest_case(rest_harness, "invalidCursorStartsAgain")
    assert result["gets"] == [None, "c1", None, "c3"]
    assert result["events"] == ["reset"]


def test_a_closed_panel_sends_nothing_more_after_a_503s_wait(rest_harness: Path) -> None:
    assert _rest_case(rest_harness, "disposeStopsA503Wait") == {"sentAgain": False}
