"""boonb's Jupyter server extension: REST access to the project's traces.

``GET /boonb/api/chats/{chat_id}/traces`` pages a chat's traces (large values as
previews); ``GET /boonb/api/traces/{trace_id}`` returns one trace in full;
``GET /boonb/api/orchestrator/workflows``, ``.../runs`` and ``.../runs/{run_id}`` list the
project's workflows, page its workflow runs and give one run's pane; ``GET /boonb/api/chats``
and ``GET /boonb/api/tasks`` page the project's chats and background tasks;
``POST /boonb/api/views/{view}`` and ``GET .../views/{view}/frames`` serve the cell views
(trace viewer, tasks pane, orchestrator) to side panels, and ``GET /boonb/api/activity`` is
the sidebar's poll. The side panels'
requests, ``POST /boonb/api/tasks/{id}/cancel``, ``.../tasks/{id}/retry`` and
``.../orchestrator/runs/{id}/cancel`` (XSRF-protected), are recorded in the database for the
owning kernel to carry out at its next poll.

Enabled by ``jupyter_server_config.d/boonb.json`` (installed with the wheel), or
explicitly with ``--ServerApp.jpserver_extensions="{'boonb.server': True}"``.
Configure it through :class:`BoonbServer` (``--BoonbServer.db_path=...``).
"""

from __future__ import annotations

from typing import Any

from boonb.server.app import BoonbServer
from boonb.server.database import ProjectDatabase
from boonb.server.handlers import (
    ChatsHandler,
    ChatsQuery,
    RunCancelHandler,
    RunHandler,
    RunsHandler,
    RunsQuery,
    TaskCancelHandler,
    TaskRetryHandler,
    TasksHandler,
    TasksQuery,
    TraceDetailHandler,
    TraceQuery,
    TracesHandler,
    WorkflowsHandler,
    handlers,
)
from boonb.server.lists import ProjectLists
from boonb.server.orchestrator import ProjectRuns, RunNotFound, WorkflowList
from boonb.server.traces import ChatNotFound, ProjectTraces, TraceNotFound
from boonb.server.views import ProjectViews
from boonb.server.views_handlers import (
    ActivityHandler,
    ViewFramesHandler,
    ViewHandler,
    view_handlers,
)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "boonb.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    extension = BoonbServer(parent=serverapp, config=serverapp.config)
    path = extension.database_path(serverapp.root_dir)
    # One database for every endpoint: requests to different endpoints in the same moment
    # share its lingering handle instead of each opening the file.
    database = ProjectDatabase(
        path,
        lock_timeout=extension.database_lock_timeout(),
        on_open=lambda db: serverapp.log.info("boonb: opened the project database %s", db.path),
    )
    project = extension.project_root(serverapp.root_dir)
    web_app = serverapp.web_app
    web_app.settings["boonb_traces"] = ProjectTraces(database)
    web_app.settings["boonb_lists"] = ProjectLists(database)
    web_app.settings["boonb_runs"] = ProjectRuns(project, database)
    web_app.settings["boonb_views"] = ProjectViews(project, database)
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", handlers(base_url) + view_handlers(base_url))
    serverapp.log.info("boonb: serving traces from %s", path)


__all__ = [
    "ActivityHandler",
    "BoonbServer",
    "ChatNotFound",
    "ChatsHandler",
    "ChatsQuery",
    "ProjectDatabase",
    "ProjectLists",
    "ProjectRuns",
    "ProjectTraces",
    "ProjectViews",
    "RunCancelHandler",
    "RunHandler",
    "RunNotFound",
    "RunsHandler",
    "RunsQuery",
    "TaskCancelHandler",
    "TaskRetryHandler",
    "TasksHandler",
    "TasksQuery",
    "TraceDetailHandler",
    "TraceNotFound",
    "TraceQuery",
    "TracesHandler",
    "ViewFramesHandler",
    "ViewHandler",
    "WorkflowList",
    "WorkflowsHandler",
    "handlers",
]
