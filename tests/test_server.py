"""The Jupyter server extension, through a real `jupyter server` on loopback."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from boonb import config
from boonb.frames import ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.runtime import Runtime
from boonb.server import BoonbServer, ChatNotFound, ProjectDatabase, ProjectTraces
from boonb.server.handlers import tree_json
from boonb.store import Database, Store, make_row
from tests.conftest import make_trace, trace_frame
from tests.test_workflow_tree import run_two_phases, workflow_runtime

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "boonb-test-token"
LOCK_TIMEOUT_S = 1.5
MAX_PAGE = 200
ONLY_BOONB = {
    "boonb.server": True,
    "jupyterlab": False,
    "jupyter_lsp": False,
    "jupyter_server_terminals": False,
    "notebook_shim": False,
}
pytestmark = pytest.mark.slow


FIFTY_MB = 50 * 1024 * 1024


@dataclass(frozen=True)
class BigChat:
    """A chat of 50 traces whose tools returned large outputs, one of them 50 MB."""

    chat: uuid.UUID
    big_trace: uuid.UUID
    big_output: str
    model_call: uuid.UUID
    """A model call that recorded its system prompt."""


@dataclass(frozen=True)
class Server:
    url: str
    db_path: Path
    chat: uuid.UUID
    """A chat of 120 traces over turns 0-3."""
    other_chat: uuid.UUID
    """A chat of 3 traces."""
    empty_chat: uuid.UUID
    """A chat with a row in `chats` and no traces."""
    expected: list[dict[str, Any]]
    """`chat`'s traces in page order, as the API should render them."""
    big: BigChat

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill_big(store: Store) -> BigChat:
    chat = uuid.uuid4()
    line = "a line of a large file ✓\n"
    output = line * (FIFTY_MB // len(line.encode()))
    big = make_trace(chat_id=chat, seconds=0, output=output)
    store.writer.enqueue(ToolTraceComplete(trace=big))
    for i in range(1, 49):
        store.writer.enqueue(trace_frame(chat_id=chat, seconds=i, output=output[: 100_000 + i]))
    call = {
        "model": "m", "new_messages": [], "message_count": 1, "tools": [],
        "system": "Be brief.", "tool_schemas": None,
    }  # fmt: skip
    model = make_trace(chat_id=chat, seconds=60, kind="model", tool_name="m", input=call)
    store.writer.enqueue(ModelCallComplete(trace=model, cache=[]))
    return BigChat(chat, big.id, output, model.id)


def _fill(
    db_path: Path,
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, list[dict[str, Any]], BigChat]:
    chat, other, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Pairs of traces share a start time, so the id breaks the tie.
    frames = [
        trace_frame(chat_id=chat, turn=i % 4, seconds=i // 2, input={"i": i}, output=[i, "x"])
        for i in range(120)
    ]
    frames += [trace_frame(chat_id=other, turn=0, seconds=i) for i in range(3)]
    random.Random(7).shuffle(frames)
    store = Store(db_path, flush_interval=0.05)
    try:
        for frame in frames:
            store.writer.enqueue(frame)
        chat_row = {"id": empty, "title": "no traces yet", "created_at": datetime.now(UTC)}
        store.writer.enqueue(make_row("chats", chat_row))
        big = _fill_big(store)
        store.writer.flush()
    finally:
        store.close()
    ours = sorted(
        (f.trace for f in frames if f.trace.chat_id == chat),
        key=lambda t: (t.turn_number, t.started_at, t.id),
    )
    expected = [TypeAdapter(TraceRecord).dump_python(t, mode="json") for t in ours]
    # Small values come whole in a page: nothing is cut. A trace recorded without a root
    # is stored in its chat's tree.
    expected = [
        {**t, "root_id": str(chat), "input_cut": None, "output_cut": None} for t in expected
    ]
    return chat, other, empty, expected, big


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("jupyter")
    project = base / "project"
    project.mkdir()
    # Where kernels started in the server's root_dir write: the server's default.
    db_path = project / ".boonb" / "boonb.duckdb"
    chat, other, empty, expected, big = _fill(db_path)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOONB_", "JUPYTER_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
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
            # Only boonb: the server starts faster, and the test doesn't depend on the install.
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
        yield Server(url, db_path, chat, other, empty, expected, big)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _traces_url(chat: uuid.UUID | str) -> str:
    return f"/boonb/api/chats/{chat}/traces"


def _detail_url(trace: uuid.UUID | str) -> str:
    return f"/boonb/api/traces/{trace}"


def _all_pages(client: httpx.Client, chat: uuid.UUID, **params: Any) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(_traces_url(chat), params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        traces += body["traces"]
        cursor = body["next_cursor"]
        if cursor is None:
            return traces


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"type", "message"}
    return error


# -- paging -------------------------------------------------------------------------------


def test_pages_return_every_trace_once_in_order(server: Server) -> None:
    with server.client() as client:
        first = client.get(_traces_url(server.chat), params={"limit": 50}).json()
        assert len(first["traces"]) == 50
        assert isinstance(first["next_cursor"], str)
        traces = _all_pages(client, server.chat, limit=50)
    assert traces == server.expected
    assert len({t["id"] for t in traces}) == 120


def test_page_renders_ids_times_and_json_values(server: Server) -> None:
    with server.client() as client:
        trace = client.get(_traces_url(server.chat), params={"limit": 1}).json()["traces"][0]
    assert trace["chat_id"] == str(server.chat)
    uuid.UUID(trace["id"])
    datetime.fromisoformat(trace["started_at"])
    assert isinstance(trace["input"], dict) and isinstance(trace["output"], list)


def test_default_limit_is_50(server: Server) -> None:
    with server.client() as client:
        body = client.get(_traces_url(server.chat)).json()
    assert len(body["traces"]) == 50


def test_turn_number_filters_pages(server: Server) -> None:
    with server.client() as client:
        traces = _all_pages(client, server.chat, limit=7, turn_number=2)
    assert traces == [t for t in server.expected if t["turn_number"] == 2]
    assert len(traces) == 30


def test_known_chat_with_nothing_matching_is_an_empty_page(server: Server) -> None:
    with server.client() as client:
        by_turn = client.get(_traces_url(server.chat), params={"turn_number": 99})
        no_traces = client.get(_traces_url(server.empty_chat))
    assert by_turn.status_code == no_traces.status_code == 200
    assert by_turn.json() == no_traces.json() == {"traces": [], "next_cursor": None}


# -- large values: a small page, the whole value on request ------------------------------


def test_a_page_of_large_outputs_stays_small_and_the_detail_has_the_whole_value(
    server: Server,
) -> None:
    big = server.big
    with server.client() as client:
        page = client.get(_traces_url(big.chat), params={"limit": 50})
        detail = client.get(_detail_url(big.big_trace))
    assert page.status_code == 200, page.text
    assert len(page.content) < 400_000  # 50 traces that hold 55 MB
    traces = page.json()["traces"]
    assert len(traces) == 50
    first = traces[0]
    assert first["id"] == str(big.big_trace) and first["output"] is None
    stored = json.dumps(big.big_output, ensure_ascii=False).encode()
    assert first["output_cut"]["bytes"] == len(stored)
    assert first["output_cut"]["kind"] == "string"
    assert big.big_output.startswith(first["output_cut"]["preview"])
    assert all(t["output_cut"] is not None for t in traces if t["kind"] == "tool")

    assert detail.status_code == 200, detail.text[:500]
    body = detail.json()
    assert body["trace"]["output"] == big.big_output
    assert body["request"] is None


def test_a_model_calls_detail_carries_the_request_as_sent(server: Server) -> None:
    with server.client() as client:
        body = client.get(_detail_url(server.big.model_call)).json()
    assert body["trace"]["kind"] == "model"
    assert body["request"]["messages"] == [{"role": "system", "content": "Be brief."}]
    assert body["request"]["notes"] == []


def test_detail_of_a_bad_or_unknown_trace_id_is_400_or_404(server: Server) -> None:
    unknown = uuid.uuid4()
    with server.client() as client:
        bad = _error(client.get(_detail_url("not-a-uuid")), 400)
        missing = _error(client.get(_detail_url(unknown)), 404)
        extra = _error(client.get(_detail_url(server.big.big_trace), params={"full": "1"}), 400)
    assert bad["type"] == "InvalidTraceId" and "trace id must be a UUID" in bad["message"]
    assert missing["type"] == "TraceNotFound" and str(unknown) in missing["message"]
    assert extra["type"] == "InvalidQuery" and "full" in extra["message"]


def test_detail_needs_the_token(server: Server) -> None:
    with server.client(None) as client:
        refused = client.get(_detail_url(server.big.big_trace))
    assert refused.status_code in (401, 403)
    assert "a line of a large file" not in refused.text


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_are_refused_with_no_data(
    server: Server, token: str | None
) -> None:
    with server.client(token) as client:
        response = client.get(_traces_url(server.chat))
        by_query = client.get(_traces_url(server.chat), params={"token": token or ""})
    for refused in (response, by_query):
        assert refused.status_code in (401, 403)
        assert str(server.chat) not in refused.text
        assert "traces" not in refused.text


def test_token_in_the_query_string_is_accepted(server: Server) -> None:
    with server.client(None) as client:
        response = client.get(_traces_url(server.chat), params={"token": TOKEN, "limit": 2})
    assert response.status_code == 200
    assert len(response.json()["traces"]) == 2


# -- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error_type", "named"),
    [
        ({"limit": "0"}, "InvalidLimit", "limit"),
        ({"limit": "201"}, "InvalidLimit", "limit"),
        ({"limit": "abc"}, "InvalidLimit", "limit"),
        ({"limit": "2.5"}, "InvalidLimit", "limit"),
        ({"turn_number": "-1"}, "InvalidQuery", "turn_number"),
        ({"turn_number": "x"}, "InvalidQuery", "turn_number"),
        ({"cursor": ""}, "InvalidCursor", "cursor"),
        ({"cursor": "not-a-cursor"}, "InvalidCursor", "cursor"),
        ({"limt": "5"}, "InvalidQuery", "limt"),
        ([("limit", "5"), ("limit", "6")], "InvalidQuery", "limit"),
    ],
)
def test_bad_parameters_are_400_naming_the_problem(
    server: Server, params: Any, error_type: str, named: str
) -> None:
    with server.client() as client:
        error = _error(client.get(_traces_url(server.chat), params=params), 400)
    assert error["type"] == error_type
    assert named in error["message"]


def test_tampered_cursor_is_400(server: Server) -> None:
    with server.client() as client:
        cursor = client.get(_traces_url(server.chat), params={"limit": 5}).json()["next_cursor"]
        body, signature = cursor.split(".")
        flipped = ("A" if body[0] != "A" else "B") + body[1:]
        response = client.get(_traces_url(server.chat), params={"cursor": f"{flipped}.{signature}"})
    error = _error(response, 400)
    assert error["type"] == "InvalidCursor"
    assert "cursor" in error["message"]


def test_cursor_of_another_chat_or_filter_is_400(server: Server) -> None:
    with server.client() as client:
        cursor = client.get(_traces_url(server.chat), params={"limit": 5}).json()["next_cursor"]
        other_chat = client.get(_traces_url(server.other_chat), params={"cursor": cursor})
        other_turn = client.get(
            _traces_url(server.chat), params={"cursor": cursor, "turn_number": 0}
        )
    for response in (other_chat, other_turn):
        error = _error(response, 400)
        assert error["type"] == "InvalidCursor"
        assert "another chat" in error["message"]


def test_non_uuid_chat_id_is_400(server: Server) -> None:
    with server.client() as client:
        error = _error(client.get(_traces_url("not-a-uuid")), 400)
    assert error["type"] == "InvalidChatId"
    assert "chat id must be a UUID" in error["message"]


def test_unknown_chat_is_404(server: Server) -> None:
    unknown = uuid.uuid4()
    with server.client() as client:
        error = _error(client.get(_traces_url(unknown)), 404)
    assert error["type"] == "ChatNotFound"
    assert str(unknown) in error["message"]
    # It may be a chat a kernel has only just started: the message says so, and what to do.
    assert "just started, ask again" in error["message"]


# -- sharing the database -----------------------------------------------------------------


def test_database_held_past_the_timeout_is_503_with_retry_after(server: Server) -> None:
    # Hold the file the way another process's lingering handle would.
    holder = Database(server.db_path, linger=60)
    try:
        with holder.connection():
            pass
        with server.client() as client:
            responses = [
                client.get(_traces_url(server.chat)),
                client.get(_detail_url(server.big.model_call)),
            ]
    finally:
        holder.close()
    for response in responses:
        error = _error(response, 503)
        assert error["type"] == "DatabaseLocked"
        assert int(response.headers["retry-after"]) > 0
    with server.client() as client:
        assert client.get(_traces_url(server.chat)).status_code == 200
        assert client.get(_detail_url(server.big.model_call)).status_code == 200


WRITER = """
import sys, threading, time, uuid
from datetime import UTC, datetime, timedelta
from boonb.frames import ToolTraceComplete, TraceRecord
from boonb.store import Store

path, chat = sys.argv[1], uuid.UUID(sys.argv[2])
store = Store(path, flush_interval=0.02, lock_timeout=60)
t0 = datetime(2026, 1, 1, tzinfo=UTC)
written = 0
stop = threading.Event()  # set when the test closes our stdin
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
while not stop.is_set():
    for _ in range(10):
        trace = TraceRecord(
            id=uuid.uuid4(), session_id=chat, chat_id=chat, turn_number=written // 50,
            kind="tool", tool_name="t", started_at=t0 + timedelta(seconds=written),
        )
        store.writer.enqueue(ToolTraceComplete(trace=trace))
        written += 1
    store.writer.flush()
    print("flushed", written, flush=True)
    time.sleep(0.02)
store.close()
print("done", written, flush=True)
"""


def test_reads_succeed_while_another_process_writes(server: Server) -> None:
    chat = uuid.uuid4()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(server.db_path), str(chat)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().startswith("flushed")  # the chat exists from here on
    counts: list[int] = []
    with server.client() as client:
        for _ in range(6):
            traces = _all_pages(client, chat, limit=MAX_PAGE)
            ids = [t["id"] for t in traces]
            assert len(ids) == len(set(ids))
            counts.append(len(ids))
            # More rows land before the next read, however slow the machine is.
            while int(writer.stdout.readline().split()[1]) <= counts[-1]:
                pass
        out, err = writer.communicate(input="", timeout=60)  # closes stdin: the writer stops
        assert writer.returncode == 0, err
        final = _all_pages(client, chat, limit=MAX_PAGE)
    written = int(out.split()[-1])
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts
    assert counts[-1] <= written
    assert len(final) == written


# -- configuration, in process ------------------------------------------------------------


def test_missing_database_is_chat_not_found_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / ".boonb" / "boonb.duckdb"
    traces = ProjectTraces(ProjectDatabase(path, lock_timeout=1))
    with pytest.raises(ChatNotFound, match="does not exist yet"):
        traces.page(str(uuid.uuid4()), cursor=None, limit=50, turn_number=None)
    assert not path.exists()
    assert not path.parent.exists()


def test_database_defaults_to_the_server_root_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOONB_PROJECT", raising=False)
    assert BoonbServer().database_path(tmp_path) == tmp_path / ".boonb" / "boonb.duckdb"


def test_database_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("BOONB_PROJECT", str(tmp_path / "env-project"))
    env_project = tmp_path / "env-project" / ".boonb" / "boonb.duckdb"
    assert BoonbServer().database_path(root) == env_project
    configured = BoonbServer(project=str(tmp_path / "p"))
    assert configured.database_path(root) == tmp_path / "p" / ".boonb" / "boonb.duckdb"
    monkeypatch.setenv("BOONB_DB_PATH", str(tmp_path / "env.duckdb"))
    assert configured.database_path(root) == tmp_path / "env.duckdb"
    explicit = BoonbServer(project=str(tmp_path / "p"), db_path=str(tmp_path / "x.duckdb"))
    assert explicit.database_path(root) == tmp_path / "x.duckdb"


def test_lock_timeout_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOONB_LOCK_TIMEOUT_S", raising=False)
    assert BoonbServer().database_lock_timeout() == 10.0
    monkeypatch.setenv("BOONB_LOCK_TIMEOUT_S", "4")
    assert BoonbServer().database_lock_timeout() == 4.0
    assert BoonbServer(lock_timeout=0.5).database_lock_timeout() == 0.5


# -- trees ---------------------------------------------------------------------------------


@pytest.fixture
def served_runtime(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("BOONB_DB_PATH", str(server.db_path))
    config.reset()
    yield from workflow_runtime()


def _tree(server: Server, root: uuid.UUID, **params: object) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/boonb/api/traces/{root}/tree", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _shifted(nodes: list[dict[str, Any]], by: int) -> list[dict[str, Any]]:
    return [{**n, "depth": n["depth"] + by, "children": _shifted(n["children"], by)} for n in nodes]


def _ids(nodes: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for node in nodes:
        found.append(node["trace"]["id"])
        found += _ids(node["children"])
    return found


@pytest.mark.slow
def test_the_rest_tree_is_the_python_tree_and_a_subtree_is_only_its_branch(
    server: Server, served_runtime: Runtime
) -> None:
    run_id = run_two_phases(served_runtime)
    served_runtime.store.writer.flush()
    python = served_runtime.store.traces.tree(run_id)
    assert python is not None and python.total == python.shown
    whole = _tree(server, run_id)
    assert whole == json.loads(tree_json(python))
    (workflow,) = whole["nodes"]
    assert workflow["trace"]["kind"] == "workflow" and workflow["trace"]["id"] == str(run_id)
    draft = next(n for n in workflow["children"] if n["trace"]["tool_name"] == "draft")
    branch = _tree(server, run_id, subtree=draft["trace"]["id"])
    # The same branch, its depths counted from its own top.
    assert _shifted(branch["nodes"], 1) == [draft]
    assert _ids(branch["nodes"]) == _ids([draft]) and branch["total"] == len(_ids([draft]))
    assert not set(_ids(branch["nodes"])) & {str(run_id)}
    top = _tree(server, run_id, max_depth=1)
    assert [n["trace"]["kind"] for n in top["nodes"][0]["children"]] == ["phase", "phase"]
    phases = top["nodes"][0]["children"]
    assert all(n["children"] == [] and n["hidden_children"] > 0 for n in phases)
    assert top["shown"] == 3 and top["total"] == whole["total"]


@pytest.mark.slow
def test_tree_endpoint_refuses_bad_parameters_and_unknown_trees(server: Server) -> None:
    with server.client() as client:
        base = f"/boonb/api/traces/{server.chat}/tree"
        for params, status, kind in [
            ({"max_nodes": "0"}, 400, "InvalidQuery"),
            ({"max_depth": "-1"}, 400, "InvalidQuery"),
            ({"subtree": "not-a-uuid"}, 400, "InvalidTraceId"),
            ({"deep": "1"}, 400, "InvalidQuery"),
            ({"subtree": str(uuid.uuid4())}, 404, "TraceNotFound"),
        ]:
            response = client.get(base, params=params)
            assert response.status_code == status, (params, response.text)
            assert response.json()["error"]["type"] == kind, params
        unknown = client.get(f"/boonb/api/traces/{uuid.uuid4()}/tree")
        assert unknown.status_code == 404 and "no trace tree" in unknown.json()["error"]["message"]
        bad_root = client.get("/boonb/api/traces/nope/tree")
        assert bad_root.status_code == 400
        chat = client.get(base, params={"max_nodes": "5"}).json()
        assert chat["total"] == 120 and chat["shown"] == 5
    with server.client(token=None) as anonymous:
        assert anonymous.get(base).status_code in (401, 403)
