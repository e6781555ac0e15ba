"""The workflow runs this kernel started, in memory; every change of one is recorded as its row."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from boonb.engine import EngineFuture
from boonb.store import Store
from boonb.store.workflow_runs import run_row
from boonb.workflow.models import RunStatus
from boonb.workflow.run_status import progress, status_frame
from boonb.workflow.runner import WorkflowRun

Entry = Literal["script", "run"]


@dataclass
class LiveRun:
    """A run this kernel started: what it runs, where it stands, and its host while kept."""

    status: RunStatus
    source: str
    args: dict[str, Any]
    timeout: float
    entry: Entry
    host: WorkflowRun | None = None
    future: EngineFuture[RunStatus] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    released: bool = False
    """Its steps and log lines were let go (:meth:`LiveRuns.release_old`): the store has them."""


class LiveRuns:
    """The runs this kernel started, by id; each change of one is upserted as its row.

    ``store`` is read at each use (the user can point the kernel at another database);
    rows go through its writer, tagged with ``session_id`` and this kernel's pid.
    """

    def __init__(self, *, store: Callable[[], Store], session_id: uuid.UUID) -> None:
        self._store = store
        self.session_id = session_id
        self._runs: dict[uuid.UUID, LiveRun] = {}

    def __contains__(self, run_id: uuid.UUID) -> bool:
        return run_id in self._runs

    def get(self, run_id: uuid.UUID) -> LiveRun | None:
        return self._runs.get(run_id)

    def add(self, run: LiveRun) -> None:
        """Keep a new run and record its row."""
        self._runs[run.status.run_id] = run
        self.record(run)

    def any_open(self) -> bool:
        """Whether one of the runs is pending or running."""
        return any(r.status.state in ("pending", "running") for r in list(self._runs.values()))

    def update(self, run: LiveRun, *, host: WorkflowRun | None = None, **changes: Any) -> None:
        """Change a run's status (taking ``host``'s progress when given) and record it."""
        if host is not None:
            changes.update(progress(host))
        elif changes.get("state") not in (None, "pending", "running"):
            changes.setdefault("finished_at", datetime.now(UTC))
        run.status = run.status.model_copy(update=changes)
        self.record(run)

    def record(self, run: LiveRun) -> None:
        self._store().writer.enqueue(
            run_row(
                status_frame(run.status, run.host),
                args=run.args,
                result=run.status.result,
                session_id=self.session_id,
                kernel_pid=os.getpid(),
                created_at=run.created_at,
            )
        )

    def release_old(self, keep: int) -> None:
        """Let go of the steps and log lines of all but the last ``keep`` ended runs."""
        ended = [
            run
            for run in self._runs.values()
            if not run.released and run.status.state not in ("pending", "running")
        ]
        for run in ended[: max(len(ended) - keep, 0)]:
            run.host, run.released = None, True
