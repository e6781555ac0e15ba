"""Migrations on a database the version-1 code wrote (tests/fixtures/boonb-v1.duckdb).

``boonb-v1.json`` holds what version 1 answered for the fixture's chats; see
``tests/fixtures/make_v1_fixture.py`` for how both were made.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from boonb.frames import WorkflowLog, WorkflowStep
from boonb.store import (
    SCHEMA_VERSION,
    Database,
    DatabaseTooNew,
    DatabaseUnusable,
    Store,
    WorkflowRunStore,
    migrations,
)
from boonb.store.migrations import Migration

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "boonb-v1.duckdb"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "boonb-v1.json").read_text())["chats"]


@pytest.fixture
def v1_path(tmp_path: Path) -> Path:
    path = tmp_path / "boonb.duckdb"
    shutil.copyfile(V1, path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions(path: Path) -> list[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        ]
    finally:
        con.close()


def _as_migrated(chat: str, answers: dict[str, Any]) -> dict[str, Any]:
    """What version 1 answered, plus what version 2 adds to old rows: a root, and tool parents."""
    traces = [t for page in answers["pages"] for t in page["traces"]]
    model_of_turn = {t["turn_number"]: t["id"] for t in traces if t["kind"] == "model"}

    def grown(trace: dict[str, Any]) -> dict[str, Any]:
        trace = dict(trace)
        trace["root_id"] = trace["workflow_run_id"] or chat
        if trace["kind"] == "tool":
            trace["parent_id"] = model_of_turn[trace["turn_number"]]
        return trace

    return {
        "pages": [
            {**page, "traces": [grown(t) for t in page["traces"]]} for page in answers["pages"]
        ],
        "details": {i: {**d, "trace": grown(d["trace"])} for i, d in answers["details"].items()},
        **{k: answers[k] for k in ("totals", "turn_cache", "highlights")},
    }


def _answers(store: Store, chat: str) -> dict[str, Any]:
    pages, cursor = [], None
    while True:
        page = store.traces.page(chat, cursor=cursor, limit=3)
        pages.append(page.model_dump(mode="json"))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [t["id"] for p in pages for t in p["traces"]]
    details = {}
    for trace_id in ids:
        detail = store.traces.detail(trace_id)
        assert detail is not None
        details[trace_id] = detail.model_dump(mode="json")
    return {
        "pages": pages,
        "details": details,
        "totals": store.traces.chat_totals(chat).model_dump(mode="json"),
        "turn_cache": [t.model_dump(mode="json") for t in store.traces.turn_cache(chat)],
        "highlights": store.traces.chat_highlights(chat).model_dump(mode="json"),
    }


def test_fixture_is_a_version_1_database() -> None:
    assert _versions(V1) == [1]
    assert not V1.with_suffix(".duckdb.wal").exists()


def test_version_1_database_is_migrated_in_place(v1_path: Path) -> None:
    Database(v1_path).close()
    assert _versions(v1_path) == list(range(1, SCHEMA_VERSION + 1))
    con = duckdb.connect(str(v1_path), read_only=True)
    try:
        no_root = con.execute("SELECT count(*) FROM tool_traces WHERE root_id IS NULL").fetchone()
        orphan_tools = con.execute(
            "SELECT count(*) FROM tool_traces WHERE kind = 'tool' AND parent_id IS NULL"
        ).fetchone()
        chats = con.execute("SELECT id, workflow_run_id, root_id FROM chats").fetchall()
        counts = con.execute("SELECT count(*) FROM tool_traces").fetchone()
    finally:
        con.close()
    assert no_root == (0,) and orphan_tools == (0,) and counts == (14,)
    assert chats and all(root == (run or chat) for chat, run, root in chats)


def test_migrated_chats_page_and_show_as_version_1_did(v1_path: Path) -> None:
    store = Store(v1_path)
    try:
        for chat, answers in EXPECTED.items():
            assert _answers(store, chat) == _as_migrated(chat, answers), chat
    finally:
        store.close()


def test_reopening_a_migrated_database_changes_nothing(v1_path: Path) -> None:
    Database(v1_path).close()
    before = _digest(v1_path)
    db = Database(v1_path)
    db.close()
    assert _digest(v1_path) == before
    assert _versions(v1_path) == list(range(1, SCHEMA_VERSION + 1))


def test_database_from_a_newer_boonb_is_refused_and_left_untouched(v1_path: Path) -> None:
    con = duckdb.connect(str(v1_path))
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 5])
    con.execute("CHECKPOINT")
    con.close()
    before = _digest(v1_path)
    with pytest.raises(DatabaseTooNew) as refused:
        Database(v1_path)
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 5}" in message and "upgrade boonb" in message
    assert isinstance(refused.value, DatabaseUnusable)
    assert _digest(v1_path) == before
    assert not v1_path.with_suffix(".duckdb.wal").exists()


def test_a_failing_migration_leaves_the_version_1_database_as_it_was(
    v1_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = (
        *migrations.MIGRATIONS[:1],
        Migration(3, "a step that fails halfway", ("SELECT 1", "SELECT * FROM no_such_table")),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 3)
    with pytest.raises(duckdb.CatalogException):
        Database(v1_path)
    assert _versions(v1_path) == [1]
    con = duckdb.connect(str(v1_path), read_only=True)
    try:
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tool_traces'"
        ).fetchall()]  # fmt: skip
    finally:
        con.close()
    assert "root_id" not in columns  # step 2 was rolled back with step 3


def test_version_4_shows_a_version_1_run_and_stores_new_steps_and_log_lines(
    v1_path: Path,
) -> None:
    run = "00000000-0000-4000-8000-0000000000aa"  # the fixture's one run
    store = Store(v1_path, flush_interval=0.05)
    try:
        runs = WorkflowRunStore(store.db)
        (old,) = runs.page().runs
        assert (str(old.run_id), old.workflow, old.state) == (run, "fixture", "completed")
        assert (old.agents_done, old.agents_total, old.agents_cached) == (0, 0, 0)
        before = runs.detail(run)
        assert before is not None and before.steps == [] and before.logs == []
        step = WorkflowStep(
            run_id=old.run_id, agent_id="a", state="completed", trace_id=uuid.uuid4(),
            label="a", index=1, tokens_used=7, started_at=datetime.now(UTC),
        )  # fmt: skip
        line = WorkflowLog(run_id=old.run_id, message="hello", at=datetime.now(UTC), seq=1)
        store.writer.enqueue(step)
        store.writer.enqueue(line)
        assert store.writer.flush()
        after = runs.detail(run)
    finally:
        store.close()
    assert after is not None
    assert after.steps == [step] and after.logs == [line] and after.logs_total == 1
