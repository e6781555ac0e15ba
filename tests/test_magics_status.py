from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow


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


def test_load_ext_registers_magics_and_status_reports_the_database(tmp_path: Path) -> None:
    code = (
        "%load_ext boonb\n"
        "print('boonb' in get_ipython().magics_manager.magics['line'])\n"
        "%boonb\n"
        "%boonb config BOONB_FLUSH_INTERVAL_MS=500\n"
    )
    result = _ipython(code, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "True" in out
    db = tmp_path / ".boonb" / "boonb.duckdb"
    assert f"database   {db}" in out
    assert "sessions 1" in out  # this kernel session, flushed before counting
    assert re.search(r"flush_interval_ms +500\n", out)
    con = duckdb.connect(str(db))
    (ended,) = con.execute("SELECT ended_at IS NOT NULL FROM sessions").fetchone()  # type: ignore[misc]
    assert ended, "the session is closed and flushed at exit"


def test_bad_config_value_gets_a_short_message_and_changes_nothing(tmp_path: Path) -> None:
    code = "%load_ext boonb\n%boonb config flush_interval_ms=abc\n%boonb config\n"
    result = _ipython(code, tmp_path)
    assert "boonb: invalid setting: flush_interval_ms" in result.stderr
    assert re.search(r"flush_interval_ms +200\n", result.stdout)
    assert "Traceback" not in result.stderr + result.stdout


def test_a_database_that_is_not_duckdb_gets_a_clear_message_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_text("hello\n" * 50)
    result = _ipython("%load_ext boonb\n", tmp_path, BOONB_DB_PATH=str(bad))
    assert "boonb: the database cannot be used" in result.stderr
    assert "not a DuckDB database" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert bad.read_text() == "hello\n" * 50
