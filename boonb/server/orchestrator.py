"""Blocking reads for the orchestrator's handlers: workflows and one run's pane.

Call them in a worker thread, not the event loop. Workflows are discovered from the
project's files (statically, as a kernel does: nothing is executed); runs, their steps
and log lines come from the project database, whichever kernel wrote them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from boonb.server.database import ProjectDatabase
from boonb.store import Database, InvalidRunId, RunDetail, StoreError, WorkflowRunStore
from boonb.store.traces import parse_uuid
from boonb.workflow.discovery import default_sources, discover
from boonb.workflow.models import WorkflowInfo, workflow_info


class RunNotFound(StoreError, LookupError):
    """No workflow run with this id is stored in the project (or no database yet)."""


class WorkflowList(BaseModel):
    """The workflows a project can run, by name, with their arguments."""

    workflows: list[WorkflowInfo]
    skipped: list[str]
    """Workflow files that could not be used, each as ``path: why``."""


class ProjectRuns:
    """The project's workflows and workflow runs, for the orchestrator's REST endpoints.

    The runs list is :meth:`boonb.server.lists.ProjectLists.runs`, with the other lists.

    Like :class:`boonb.server.traces.ProjectTraces`, it never creates the database:
    until a kernel wrote one, the runs list is empty and every run unknown.
    """

    def __init__(self, project: Path, database: ProjectDatabase) -> None:
        self.project = project
        self.database = database
        self.path = database.path

    def workflows(self) -> WorkflowList:
        """Every workflow found now (project, user, built-in), by name."""
        found = discover(default_sources(self.project))
        return WorkflowList(
            workflows=[workflow_info(found.workflows[name]) for name in sorted(found.workflows)],
            skipped=[f"{path}: {why}" for path, why in found.skipped],
        )

    def detail(self, run_id: str) -> RunDetail:
        """One run's status, steps, log lines and result; :class:`RunNotFound` if not stored."""
        run = parse_uuid(run_id, InvalidRunId, "run id")
        db = self._database()
        found = WorkflowRunStore(db).detail(run) if db is not None else None
        if found is None:
            where = self.path if db is not None else f"{self.path} (it does not exist yet)"
            raise RunNotFound(
                f"no workflow run {run} is stored in {where}. A run is stored by its kernel "
                "moments after it starts; take run ids from GET /boonb/api/orchestrator/runs."
            )
        return found

    def _database(self) -> Database | None:
        return self.database.get()
