from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boonb import config
from boonb.frames import ToolTraceComplete, TraceRecord
from boonb.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_trace(
    *,
    chat_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    turn: int = 0,
    seconds: float = 0.0,
    trace_id: uuid.UUID | None = None,
    **fields: object,
) -> TraceRecord:
    values: dict[str, object] = {
        "id": trace_id or uuid.uuid4(),
        "session_id": session_id or uuid.uuid4(),
        "chat_id": chat_id,
        "turn_number": turn,
        "kind": "tool",
        "tool_name": "read_file",
        "input": {"path": "a.txt"},
        "output": "text",
        "started_at": T0 + timedelta(seconds=seconds),
        "latency_ms": 12.5,
    }
    values.update(fields)
    return TraceRecord.model_validate(values)


def trace_frame(**kwargs: object) -> ToolTraceComplete:
    return ToolTraceComplete(trace=make_trace(**kwargs))  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".boonb" / "boonb.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path, flush_interval=0.05)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets settings of its own, with the project in a temp dir."""
    for var in (
        "BOONB_DB_PATH",
        "BOONB_PROVIDER",
        "BOONB_MODEL",
        "BOONB_BASE_URL",
        "DEEPSEEK_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BOONB_PROJECT", str(tmp_path / "project"))
    config.reset()
    yield
    config.reset()
