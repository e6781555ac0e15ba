"""The project's workflow runs in the store: keyset pages newest first, filters, one run."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from boonb.frames import WorkflowState, WorkflowStatus, WorkflowStep
from boonb.store import (
    InvalidCursor,
    InvalidQuery,
    InvalidRunId,
    InvalidState,
    RunSummary,
    Store,
    WorkflowRunStore,
)
from boonb.store.workflow_runs import run_row
from tests.conftest import T0

STATES: tuple[WorkflowState, ...] = ("completed", "failed", "cancelled")
NAMES = ("deep-research", "multi-review", "plan-verify")


def _fill(store: Store, count: int = 30) -> list[uuid.UUID]:
    """``count`` runs, one a minute; pairs share a creation time, so the id breaks the tie."""
    ids = []
    for i in range(count):
        run_id = uuid.uuid4()
        status = WorkflowStatus(
            run_id=run_id, workflow=NAMES[i % 3], state=STATES[i % 3], tokens_used=i,
            agents_done=2, agents_total=3, agents_cached=1, budget=1000,
        )  # fmt: skip
        store.writer.enqueue(
            run_row(
                status,
                args={"i": i},
                result=None,
                session_id=uuid.uuid4(),
                kernel_pid=1,
                created_at=T0 + timedelta(minutes=i // 2),
            )
        )
        ids.append(run_id)
    assert store.writer.flush()
    return ids


def _all(runs: WorkflowRunStore, **filters: Any) -> list[RunSummary]:
    found: list[RunSummary] = []
    cursor = None
    while True:
        page = runs.page(cursor, 4, **filters)
        found += page.runs
        cursor = page.next_cursor
        if cursor is None:
            return found


def _newest_first(found: list[RunSummary]) -> bool:
    keys = [(r.created_at, r.run_id) for r in found]
    return keys == sorted(keys, reverse=True)


def test_pages_list_every_run_once_newest_first(store: Store) -> None:
    ids = _fill(store)
    runs = WorkflowRunStore(store.db)
    found = _all(runs)
    assert sorted(r.run_id for r in found) == sorted(ids) and _newest_first(found)
    first = found[0]
    assert (first.agents_done, first.agents_total, first.agents_cached) == (2, 3, 1)
    assert first.args["i"] in (28, 29) and first.budget == 1000


def test_state_filter_and_name_search_page_alone(store: Store) -> None:
    _fill(store)
    runs = WorkflowRunStore(store.db)
    failed = _all(runs, state="failed")
    assert len(failed) == 10 and {r.state for r in failed} == {"failed"} and _newest_first(failed)
    review = _all(runs, search="REVIEW")
    assert len(review) == 10 and {r.workflow for r in review} == {"multi-review"}
    assert _all(runs, state="failed", search="review") == failed  # i % 3 == 1: both
    assert _all(runs, search="no-such") == []


def test_bad_cursors_states_limits_and_ids_are_refused(store: Store) -> None:
    _fill(store)
    runs = WorkflowRunStore(store.db)
    cursor = runs.page(None, 4).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor, match="made with another state, search or database"):
        runs.page(cursor, 4, state="failed")  # a cursor is bound to its filters
    with pytest.raises(InvalidCursor):
        runs.page(cursor[:-2] + "xx", 4)
    with pytest.raises(InvalidCursor):
        runs.page("not-a-cursor", 4)
    with pytest.raises(InvalidState, match="one of pending, running"):
        runs.page(None, 4, state="done")
    for limit in (0, 201, True):
        with pytest.raises(InvalidQuery, match="limit"):
            runs.page(None, limit)
    with pytest.raises(InvalidRunId, match="run id must be a UUID"):
        runs.detail("run-1")
    assert runs.detail(uuid.uuid4()) is None


def test_a_steps_latest_frame_is_the_stored_step(store: Store) -> None:
    (run_id,) = _fill(store, 1)
    step = WorkflowStep(
        run_id=run_id, agent_id="a", state="started", trace_id=uuid.uuid4(), label="a", index=1
    )
    store.writer.enqueue(step)
    assert store.writer.flush()
    done = WorkflowStep(
        run_id=run_id, agent_id="a", state="completed", trace_id=step.trace_id, label="a",
        index=1, tokens_used=12, duration_ms=5.0, last_log="→ read_file",
    )  # fmt: skip
    store.writer.enqueue(done)
    assert store.writer.flush()
    detail = WorkflowRunStore(store.db).detail(run_id)
    assert detail is not None and detail.steps == [done]


def test_a_dead_kernels_run_reads_interrupted_with_its_open_steps_cancelled(store: Store) -> None:
    _fill(store, 1)  # an ended run, left alone
    running = uuid.uuid4()
    store.writer.enqueue(
        run_row(
            WorkflowStatus(run_id=running, workflow="w", state="running"),
            args={},
            result=None,
            session_id=uuid.uuid4(),
            kernel_pid=1,
            created_at=T0,
        )
    )
    for state in ("started", "completed"):
        store.writer.enqueue(
            WorkflowStep(run_id=running, agent_id=state, state=state, trace_id=uuid.uuid4())
        )
    assert store.writer.flush()
    runs = WorkflowRunStore(store.db)
    assert runs.open_runs() == [(running, 1)]
    runs.mark_interrupted([running])
    detail = runs.detail(running)
    assert detail is not None and detail.status.state == "interrupted"
    assert sorted(s.state for s in detail.steps) == ["cancelled", "completed"]
    assert runs.open_runs() == []
