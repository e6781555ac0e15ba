"""A workflow run's status in three shapes: from its host, as a frame, from a stored frame."""

from __future__ import annotations

from typing import Any

from boonb.frames import WorkflowStatus
from boonb.workflow.models import RunStatus
from boonb.workflow.runner import WorkflowRun


def progress(host: WorkflowRun) -> dict[str, Any]:
    """What a run's status takes from its host while it runs."""
    return {
        "phase": host.phase,
        "agents_done": host.agents_done,
        "agents_total": host.agents_total,
        "agents_run": host.agents_run,
        "agents_cached": host.agents_cached,
        "agents_failed": host.agents_failed,
        "tokens_used": host.tokens_used,
        "started_at": host.started_at,
        "finished_at": host.finished_at,
    }


def status_frame(status: RunStatus, host: WorkflowRun | None) -> WorkflowStatus:
    """The ``workflow:status`` frame of a run as ``status`` has it."""
    return WorkflowStatus(
        run_id=status.run_id,
        workflow=status.workflow,
        state=status.state,
        phase=status.phase,
        agents_done=status.agents_done,
        agents_total=status.agents_total,
        tokens_used=status.tokens_used,
        error=status.error,
        agents_cached=status.agents_cached,
        agents_failed=status.agents_failed,
        budget=status.budget,
        started_at=status.started_at if host is None else host.started_at,
        finished_at=status.finished_at,
    )


def status_fields(frame: WorkflowStatus) -> dict[str, Any]:
    """A :class:`RunStatus`'s fields (all but its id and result) from a stored run's frame."""
    return {
        "workflow": frame.workflow,
        "state": frame.state,
        "phase": frame.phase,
        "agents_done": frame.agents_done,
        "agents_total": frame.agents_total,
        "agents_run": frame.agents_done - frame.agents_cached,
        "agents_cached": frame.agents_cached,
        "agents_failed": frame.agents_failed,
        "tokens_used": frame.tokens_used,
        "budget": frame.budget,
        "error": frame.error,
        "started_at": frame.started_at,
        "finished_at": frame.finished_at,
    }
