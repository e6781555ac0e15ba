from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from boonb.store import SCHEMA_VERSION, TABLES, Database


def _shape(path: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    con = duckdb.connect(str(path))
    try:
        columns = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns ORDER BY table_name, ordinal_position"
        ).fetchall()
        indexes = con.execute(
            "SELECT table_name, index_name, sql FROM duckdb_indexes() ORDER BY index_name"
        ).fetchall()
        versions = con.execute("SELECT version FROM schema_version").fetchall()
    finally:
        con.close()
    return columns, indexes, versions


def test_schema_applied_twice_is_a_no_op(db_path: Path) -> None:
    Database(db_path).close()
    first = _shape(db_path)
    Database(db_path).close()
    assert _shape(db_path) == first
    columns, indexes, versions = first
    assert {t for t, *_ in columns} >= set(TABLES) | {"schema_version"}
    # One row per applied version: schema.sql is version 1, each migration the next.
    assert sorted(versions) == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert {name for _, name, _ in indexes} >= {"tool_traces_chat_order", "tool_traces_session"}


def test_tool_traces_has_the_designed_columns(db_path: Path) -> None:
    Database(db_path).close()
    columns, _, _ = _shape(db_path)
    traces = {name: kind for table, name, kind, *_ in columns if table == "tool_traces"}
    assert traces["id"] == "UUID"
    assert traces["input"] == "JSON" and traces["output"] == "JSON"
    assert traces["started_at"] == "TIMESTAMP WITH TIME ZONE"
    for name in (
        "kind",
        "call_id",
        "agent_id",
        "workflow_run_id",
        "parent_id",
        "cache_tokens",
        "cache_miss_tokens",
        "reasoning_tokens",
        "tokens_used",
        "outcome",
    ):
        assert name in traces


def test_cursor_key_survives_reopening(db_path: Path) -> None:
    first = Database(db_path)
    key = first.cursor_key
    first.close()
    assert Database(db_path).cursor_key == key


@pytest.mark.parametrize("pause", [0.0, 0.045, 0.05, 0.055])
def test_a_process_that_exits_without_closing_exits_cleanly(db_path: Path, pause: float) -> None:
    # The lingering handle is let go by a timer thread about 50 ms after the last use;
    # exiting while that thread is inside DuckDB used to abort the process.
    child = (
        "import sys, time\n"
        "from boonb.store import Database\n"
        "Database(sys.argv[1]).cursor_key\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(db_path), str(pause)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
