"""The store on a disk that fills up, goes read-only, or holds a damaged file.

The full-disk tests mount a small tmpfs of their own (root only). Where mounting is
impossible they are skipped, and the skip says why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from boonb.store import DatabaseDamaged, DatabaseUnusable, Store, make_row
from tests.conftest import trace_frame


def _mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs at ``path``; the reason it could not be, or None."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else f"mount failed: {done.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB filesystem of its own, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    reason = _mount_tmpfs(mount, "4m")
    if reason is not None:
        pytest.skip(f"full-disk test skipped: {reason}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


class Told:
    """Collects what the writer tells the user; lets a test wait for a phrase."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, message: str) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, phrase: str, timeout: float = 60) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(phrase in m for m in self.messages), timeout
            )
        assert found, f"never told {phrase!r}; told {self.messages}"
        return next(m for m in self.messages if phrase in m)


def _fill(directory: Path) -> Path:
    """Take all but ~256 KiB of the filesystem's free space; returns the filler file."""
    filler = directory / "filler"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(free - (256 << 10), 0))
    return filler


def _stall(store: Store, directory: Path) -> None:
    """Fill the disk, then queue traces until the writer finds it full."""
    _fill(directory)
    chat = uuid.uuid4()
    while store.writer.stalled is None:
        for _ in range(500):
            store.writer.enqueue(trace_frame(chat_id=chat, output="x" * 500))
        store.writer.flush(timeout=30)


def _stored_ids(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [str(r[0]) for r in con.execute("SELECT id FROM tool_traces").fetchall()]
    finally:
        con.close()


def test_a_full_disk_stalls_the_writer_which_keeps_rows_and_writes_each_once_when_space_returns(
    small_disk: Path,
) -> None:
    told = Told()
    path = small_disk / "boonb.duckdb"
    store = Store(path, flush_interval=0.02, notify=told)
    chat = uuid.uuid4()
    expected: list[str] = []
    filler = _fill(small_disk)
    # Enough traces that the WAL cannot hold them in what is left.
    while store.writer.stalled is None:
        frames = [trace_frame(chat_id=chat, output="x" * 500) for _ in range(500)]
        expected.extend(str(f.trace.id) for f in frames)
        for frame in frames:
            store.writer.enqueue(frame)
        store.writer.flush(timeout=30)
    stalled = told.wait_for("cannot write traces")
    assert f"cannot write traces to {path}: disk full;" in stalled
    assert "rows kept in memory, retrying" in stalled
    # Nobody waits on the full disk: a flush answers at once, and the thread is alive.
    assert store.writer.flush(timeout=30) is False
    assert store.writer._thread.is_alive()
    late = trace_frame(chat_id=chat)
    store.writer.enqueue(late)
    expected.append(str(late.trace.id))

    filler.unlink()
    told.wait_for("works again")
    assert store.writer.flush(timeout=30)
    assert sum("cannot write traces" in m for m in told.messages) == 1  # told once
    store.close()
    stored = _stored_ids(path)
    assert len(stored) == len(set(stored))  # exactly once
    assert sorted(stored) == sorted(expected)


def test_past_the_memory_bound_the_oldest_traces_are_dropped_and_counted_not_session_state(
    small_disk: Path,
) -> None:
    told = Told()
    path = small_disk / "boonb.duckdb"
    store = Store(path, flush_interval=0.02, notify=told, max_pending=1_000)
    _stall(store, small_disk)
    chat = uuid.uuid4()
    session = make_row(
        "agent_sessions",
        {"id": uuid.uuid4(), "chat_id": chat, "state": "in_progress"},
        action="upsert",
    )
    store.writer.enqueue(session)
    for _ in range(3_000):
        store.writer.enqueue(trace_frame(chat_id=chat))
    store.writer.wake()
    dropped = told.wait_for("dropped the")
    assert "oldest unwritten rows" in dropped and "BOONB_MAX_PENDING_ROWS" in dropped
    assert store.writer.pending <= 1_000 + 1
    assert session in list(store.writer._queue)
    assert store.writer.rows_dropped >= 2_000
    store.writer.close(timeout=1)


def test_an_agent_with_tools_finishes_while_the_disk_is_full(
    small_disk: Path, tmp_path: Path
) -> None:
    """Session saves must not hold the threads tools run on while the disk refuses them."""
    from boonb.agent.loop import Agent
    from boonb.agent.recorder import Recorder
    from boonb.agent.sessions import SessionSaver
    from boonb.agent.tools.context import ToolContext
    from boonb.agent.tools.registry import tool
    from boonb.bus import Bus
    from boonb.engine import Engine
    from boonb.providers import ChatClient
    from boonb.providers.profiles import get_profile
    from boonb.sim import Rule, SimServer

    @tool()
    def in_a_thread(n: int) -> int:
        """Runs on the default thread pool, as blocking tools do."""
        return n * 2

    told = Told()
    store = Store(small_disk / "boonb.duckdb", flush_interval=0.02, notify=told)
    _stall(store, small_disk)
    chat = uuid.uuid4()
    engine, bus = Engine(), Bus()
    calls = [{"name": "in_a_thread", "arguments": {"n": i}} for i in range(8)]
    with SimServer() as sim:
        sim.add_rule(Rule("double", tool_calls=calls))
        client = ChatClient(get_profile("sim").with_overrides(base_url=sim.base_url))
        recorder = Recorder(bus, store.writer.enqueue, session_id=uuid.uuid4(), chat_id=chat)
        agent = Agent(
            client,
            recorder=recorder,
            tools=[in_a_thread],
            context=ToolContext(project_root=tmp_path),
            max_turns=6,
        )
        agent.on_boundary = SessionSaver(store, bus.publish, debounce=0.0)
        for _ in range(4):  # every run saves its session several times on the full disk
            result = engine.submit(agent.run("double these")).result(timeout=60)
            assert result.stats.tool_calls == 8
    engine.shutdown()
    store.writer.close(timeout=1)


def _made_database(path: Path) -> None:
    store = Store(path, flush_interval=0.02)
    chat = uuid.uuid4()
    for i in range(5_000):
        store.writer.enqueue(trace_frame(chat_id=chat, seconds=i, output="y" * 100))
    assert store.writer.flush(timeout=60)
    with store.db.connection() as con:
        con.execute("CHECKPOINT")
    store.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_truncated_database_is_refused_with_what_to_do_and_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "boonb.duckdb"
    _made_database(path)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    before = _digest(path)
    with pytest.raises(DatabaseDamaged) as refused:
        Store(path)
    message = str(refused.value)
    assert "is damaged (it ends inside a block" in message
    assert f"mv {path} {path}.damaged" in message
    assert _digest(path) == before
    assert not Path(f"{path}.wal").exists()


def test_a_database_cut_at_a_block_boundary_is_refused_when_blocks_in_use_are_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "boonb.duckdb"
    _made_database(path)
    block = 262_144
    os.truncate(path, 12_288 + 2 * block)  # DuckDB cuts only whole blocks, but not used ones
    before = _digest(path)
    with pytest.raises(DatabaseDamaged, match=r"blocks are in use but only 2 are there"):
        Store(path)
    assert _digest(path) == before


def test_a_database_that_grew_by_part_of_a_block_past_its_blocks_in_use_opens(
    tmp_path: Path,
) -> None:
    """A kernel killed while DuckDB extended the file leaves such an end: nothing is lost."""
    path = tmp_path / "boonb.duckdb"
    _made_database(path)
    with path.open("ab") as grown:
        grown.write(b"\0" * 5_000)
    store = Store(path)
    try:
        with store.db.connection() as con:
            row = con.execute("SELECT count(*) FROM tool_traces").fetchone()
    finally:
        store.close()
    assert row == (5_000,)


def test_a_database_cut_inside_its_headers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "boonb.duckdb"
    _made_database(path)
    os.truncate(path, 6000)
    with pytest.raises(DatabaseDamaged, match="its header is cut off"):
        Store(path)


def test_a_read_only_mount_says_so_rather_than_blaming_permissions(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    reason = _mount_tmpfs(mount, "8m")
    if reason is not None:
        pytest.skip(f"read-only mount test skipped: {reason}")
    try:
        _made_database(mount / "boonb.duckdb")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(DatabaseUnusable, match="is on a read-only filesystem"):
            Store(mount / "boonb.duckdb")
        with pytest.raises(DatabaseUnusable, match="is on a read-only filesystem"):
            Store(mount / "new" / "boonb.duckdb")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
