from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from boonb.store import Database

ROOT = Path(__file__).resolve().parent.parent
CHILD = [sys.executable, "-m", "tests.writer_child"]
pytestmark = pytest.mark.slow


def _spawn(db: Path, chat: uuid.UUID, start: int, count: int, batch: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CHILD, str(db), str(chat), str(start), str(count), str(batch)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_ids(db: Path) -> list[uuid.UUID]:
    con = duckdb.connect(str(db))
    try:
        return [r[0] for r in con.execute("SELECT id FROM tool_traces").fetchall()]
    finally:
        con.close()


def test_two_processes_writing_at_once_lose_and_duplicate_nothing(db_path: Path) -> None:
    Database(db_path).close()
    chat = uuid.uuid4()
    children = [_spawn(db_path, chat, 0, 5_000, 250), _spawn(db_path, chat, 5_000, 5_000, 250)]
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        assert out.rstrip().endswith("done")
        assert "Traceback" not in err
    stored = _stored_ids(db_path)
    assert len(stored) == 10_000
    assert set(stored) == {uuid.uuid5(chat, str(i)) for i in range(10_000)}


def test_sigkill_mid_write_leaves_every_flushed_row_intact(db_path: Path) -> None:
    Database(db_path).close()
    chat = uuid.uuid4()
    child = _spawn(db_path, chat, 0, 1_000_000, 500)
    assert child.stdout is not None
    flushed = 0
    for line in child.stdout:
        flushed = int(line.split()[1])
        if flushed >= 5_000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # The database opens (the WAL replays) and holds every row reported flushed, once.
    stored = _stored_ids(db_path)
    assert len(stored) == len(set(stored))
    assert {uuid.uuid5(chat, str(i)) for i in range(flushed)} <= set(stored)
    # ...and boonb can keep writing to it.
    Database(db_path).close()


def test_opening_while_another_process_grows_the_file_works_every_time(db_path: Path) -> None:
    """Each open runs the damage check, which must not take a file in use for a cut one."""
    Database(db_path).close()
    chat = uuid.uuid4()
    child = _spawn(db_path, chat, 0, 1_000_000, 2_000)
    assert child.stdout is not None
    try:
        opened = 0
        for line in child.stdout:  # each line: the child committed another batch
            Database(db_path, lock_timeout=60).close()  # raises DatabaseDamaged if fooled
            opened += 1
            if int(line.split()[1]) >= 60_000:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert opened >= 30
