"""REST handlers: authenticated, thin, their query parameters validated by pydantic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from tornado import web

from boonb.frames import TaskState, WorkflowState
from boonb.server.lists import ProjectLists
from boonb.server.orchestrator import ProjectRuns, RunNotFound
from boonb.server.traces import (
    DEFAULT_TREE_NODES,
    MAX_TREE_NODES,
    ChatNotFound,
    ProjectTraces,
    TraceNotFound,
)
from boonb.store import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    DatabaseLocked,
    DatabaseUnusable,
    InvalidCursor,
    InvalidLimit,
    InvalidQuery,
)
from boonb.store.project_lists import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, ChatState
from boonb.store.projections import TraceTree
from boonb.store.requests_from_server import NotStored, RequestRefused
from boonb.store.traces import PagedTrace
from boonb.store.workflow_runs import DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT

# Seconds a client is told to wait after a 503 for a database another process held.
RETRY_AFTER_S = 2

# Query arguments Jupyter itself reads (token auth, XSRF), not ours to refuse.
_JUPYTER_ARGUMENTS = frozenset({"token", "_xsrf"})


class _Query(BaseModel):
    """Query parameters, validated from the raw arguments into the store's errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_arguments(cls, arguments: dict[str, list[bytes]]) -> Any:
        """Validate raw query arguments, raising the store's :class:`InvalidQuery` errors."""
        values: dict[str, str] = {}
        for name, given in arguments.items():
            if name in _JUPYTER_ARGUMENTS:
                continue
            if len(given) != 1:
                raise InvalidQuery(f"{name} was given {len(given)} times; give it once")
            values[name] = given[0].decode("utf-8", errors="replace")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _invalid(exc, values, cls) from None


class TraceQuery(_Query):
    """Query parameters of ``GET .../chats/{id}/traces``."""

    limit: int = Field(
        default=DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"an integer from 1 to {MAX_LIMIT}",
    )
    turn_number: int | None = Field(default=None, ge=0, description="a non-negative integer")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        description="the next_cursor of a previous page",
    )


class TreeQuery(_Query):
    """Query parameters of ``GET .../traces/{root_id}/tree``."""

    max_depth: int | None = Field(
        default=None, ge=0, le=1000, description="an integer from 0 (the top rows) to 1000"
    )
    max_nodes: int = Field(
        default=DEFAULT_TREE_NODES,
        ge=1,
        le=MAX_TREE_NODES,
        description=f"an integer from 1 to {MAX_TREE_NODES}",
    )
    subtree: str | None = Field(
        default=None, min_length=1, description="the id of a row of this tree"
    )


class RunsQuery(_Query):
    """Query parameters of ``GET .../orchestrator/runs``."""

    limit: int = Field(
        default=DEFAULT_RUNS_LIMIT,
        ge=1,
        le=MAX_RUNS_LIMIT,
        description=f"an integer from 1 to {MAX_RUNS_LIMIT}",
    )
    cursor: str | None = Field(
        default=None, min_length=1, description="the next_cursor of a previous page"
    )
    state: WorkflowState | None = Field(
        default=None,
        description="one of pending, running, completed, failed, cancelled, interrupted",
    )
    search: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="part of a workflow's name, 1 to 200 characters",
    )


class ChatsQuery(_Query):
    """Query parameters of ``GET /boonb/api/chats``."""

    limit: int = Field(
        default=DEFAULT_LIST_LIMIT,
        ge=1,
        le=MAX_LIST_LIMIT,
        description=f"an integer from 1 to {MAX_LIST_LIMIT}",
    )
    cursor: str | None = Field(
        default=None, min_length=1, description="the next_cursor of a previous page"
    )
    state: ChatState | None = Field(
        default=None,
        description=(
            "one of in_progress, awaiting_input, completed, failed, interrupted, cancelled"
        ),
    )
    search: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="part of a chat's title, 1 to 200 characters",
    )
    top_level: bool = Field(
        default=False,
        description="true or false (true: only the user's own chats, no subagents' or "
        "workflow agents')",
    )


class TasksQuery(_Query):
    """Query parameters of ``GET /boonb/api/tasks``."""

    limit: int = Field(
        default=DEFAULT_LIST_LIMIT,
        ge=1,
        le=MAX_LIST_LIMIT,
        description=f"an integer from 1 to {MAX_LIST_LIMIT}",
    )
    cursor: str | None = Field(
        default=None, min_length=1, description="the next_cursor of a previous page"
    )
    state: TaskState | None = Field(
        default=None,
        description="one of pending, running, completed, failed, cancelled, interrupted, read",
    )
    search: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="part of a task's title, 1 to 200 characters",
    )


def _invalid(exc: ValidationError, values: dict[str, str], query: type[_Query]) -> InvalidQuery:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    field = query.model_fields.get(name)
    if field is None:
        known = ", ".join(query.model_fields)
        return InvalidQuery(f"unknown query parameter {name!r}; known: {known}")
    message = f"{name} must be {field.description}, got {values.get(name)!r}"
    if name == "limit":
        return InvalidLimit(message)
    if name == "cursor":
        return InvalidCursor(message)
    return InvalidQuery(message)


class _BoonbHandler(APIHandler):
    """What both handlers share: the project's traces, and errors as JSON."""

    auth_resource = "boonb"

    @property
    def traces(self) -> ProjectTraces:
        traces: ProjectTraces = self.settings["boonb_traces"]
        return traces

    @property
    def lists(self) -> ProjectLists:
        lists: ProjectLists = self.settings["boonb_lists"]
        return lists

    @property
    def runs(self) -> ProjectRuns:
        runs: ProjectRuns = self.settings["boonb_runs"]
        return runs

    def _no_query(self) -> bool:
        """Refuse (400) any query parameter of an endpoint that takes none; True if refused."""
        given = sorted(set(self.request.query_arguments) - _JUPYTER_ARGUMENTS)
        if given:
            self._error(400, InvalidQuery(f"unknown query parameter {given[0]!r}; this takes none"))
        return bool(given)

    async def _answer(self, read: Callable[[], BaseModel | bytes]) -> None:
        """Finish with ``read()``'s JSON, or with the error it raised as its status."""
        try:
            # DuckDB calls block (and may wait out another process's lock): keep
            # them off the event loop.
            answer = await asyncio.to_thread(read)
        except InvalidQuery as exc:
            self._error(400, exc)
        except (ChatNotFound, TraceNotFound, RunNotFound, NotStored) as exc:
            self._error(404, exc)
        except RequestRefused as exc:
            self._error(409, exc)
        except DatabaseLocked as exc:
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self._error(503, exc)
        except DatabaseUnusable as exc:
            self._error(500, exc)
        else:
            self.finish(answer if isinstance(answer, bytes) else answer.model_dump_json())

    def _error(self, status: int, exc: Exception) -> None:
        self.log.info("boonb: %s %s: %s", status, type(exc).__name__, exc)
        body: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        self.set_status(status)
        self.finish(json.dumps(body))


class TracesHandler(_BoonbHandler):
    """``GET /boonb/api/chats/{chat_id}/traces``: one keyset page of a chat's traces.

    Answers ``{"traces": [...], "next_cursor": str | null}``. An input or output over
    4 KB comes as a preview: the trace's ``input`` (``output``) is null and its
    ``input_cut`` (``output_cut``) is ``{"bytes", "kind", "preview"}``; the whole value
    is at ``GET /boonb/api/traces/{id}``. A chat whose row is stored but no trace yet
    is a page with no traces. Errors are ``{"error": {"type", "message"}}`` with 400
    (bad parameter or chat id), 404 (no such chat stored), 503 with ``Retry-After``
    (database held by another process too long) or 500 (the database path is unusable).
    """

    @web.authenticated
    @authorized
    async def get(self, chat_id: str) -> None:
        try:
            query = TraceQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        await self._answer(
            partial(
                self.traces.page,
                chat_id,
                cursor=query.cursor,
                limit=query.limit,
                turn_number=query.turn_number,
            )
        )


class TraceDetailHandler(_BoonbHandler):
    """``GET /boonb/api/traces/{trace_id}``: one trace with its whole input and output.

    Answers ``{"trace": {...}, "request": {...} | null}``; for a model call, ``request``
    is the request as it was sent (``model``, ``messages`` with the system prompt first,
    ``tools``, and ``notes`` on anything that could not be rebuilt). Errors as for a
    page: 400 (a parameter was given, or the id is no UUID), 404 (no such trace stored),
    503 with ``Retry-After``, 500.
    """

    @web.authenticated
    @authorized
    async def get(self, trace_id: str) -> None:
        if not self._no_query():
            await self._answer(partial(self.traces.detail, trace_id))


_TREE_JSON: TypeAdapter[TraceTree[PagedTrace]] = TypeAdapter(TraceTree[PagedTrace])


def tree_json(tree: TraceTree[PagedTrace]) -> bytes:
    """A tree of records as JSON, as the endpoint answers it (large values cut).

    The endpoint itself has DuckDB write its rows' JSON (:meth:`TraceStore.tree_json`);
    this is the same answer from :meth:`TraceStore.tree`'s records.
    """
    return _TREE_JSON.dump_json(tree, serialize_as_any=True)


class TreeHandler(_BoonbHandler):
    """``GET /boonb/api/traces/{root_id}/tree``: the rows of one trace tree, nested.

    ``root_id`` is a chat's id (a chat the user started is its own tree) or a workflow
    run's id. Answers ``{"root_id", "subtree", "nodes": [{"trace", "depth", "children",
    "hidden_children"}], "total", "shown"}``; traces are as in a page (inputs and outputs
    over 4 KB cut to a preview). ``max_depth`` (0 = the top rows only) and ``max_nodes``
    (default 2,000) cap the answer, taking the tree level by level; a node whose
    children were cut has ``hidden_children`` > 0, and ``subtree=<its id>`` fetches its
    branch alone. Errors as for a page: 400 (bad parameter or id), 404 (no such tree,
    or no such row in it), 503 with ``Retry-After``, 500.
    """

    @web.authenticated
    @authorized
    async def get(self, root_id: str) -> None:
        try:
            query = TreeQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return

        await self._answer(
            partial(
                self.traces.tree_json,
                root_id,
                max_depth=query.max_depth,
                max_nodes=query.max_nodes,
                subtree=query.subtree,
            )
        )


class WorkflowsHandler(_BoonbHandler):
    """``GET /boonb/api/orchestrator/workflows``: the workflows the project can run.

    Answers ``{"workflows": [WorkflowInfo], "skipped": ["path: why"]}``, found in the
    project's ``.boocode/workflows``, the user's ``~/.boocode/workflows`` and the built-in
    catalog (read, never executed), each with its arguments (``args``: name, type,
    description, default, required; and ``args_schema``, the same as a JSON schema).
    Errors: 400 for any query parameter (it takes none).
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        if not self._no_query():
            await self._answer(self.runs.workflows)


class RunsHandler(_BoonbHandler):
    """``GET /boonb/api/orchestrator/runs``: one keyset page of the project's runs, newest first.

    Answers ``{"runs": [RunSummary], "next_cursor": str | null}``, each run with
    ``cancel_requested`` (a cancel its kernel has not yet carried out); a run whose kernel
    died reads ``interrupted``. ``state`` keeps runs in
    one state, ``search`` those whose workflow name contains it (any case); a cursor is
    bound to the filters it was made with. Errors are ``{"error": {"type", "message"}}``
    with 400 (bad parameter or cursor), 503 with ``Retry-After`` (database held by another
    process too long) or 500 (the database path is unusable). No database yet: no runs.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            query = RunsQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        await self._answer(
            partial(
                self.lists.runs,
                cursor=query.cursor,
                limit=query.limit,
                state=query.state,
                search=query.search,
            )
        )


class RunHandler(_BoonbHandler):
    """``GET /boonb/api/orchestrator/runs/{run_id}``: one run's status, steps, logs and result.

    Answers a ``RunDetail``: ``status`` (a ``workflow:status`` frame), ``args``,
    ``result``, ``steps`` (``workflow:step`` frames, one per agent call, each with the
    ``trace_id`` of its row in the run's trace tree), ``logs`` (``workflow:log`` frames,
    the last 20,000 at most) and ``logs_total``. Errors: 400 (a parameter was given, or the
    id is no UUID), 404 (no such run stored), 503 with ``Retry-After``, 500.
    """

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        if not self._no_query():
            await self._answer(partial(self.runs.detail, run_id))


class ChatsHandler(_BoonbHandler):
    """``GET /boonb/api/chats``: one keyset page of the project's chats, newest first.

    Answers ``{"chats": [ChatSummary], "next_cursor": str | null}``: each chat's title,
    state (its latest saved session's, null before one was saved), turns, tokens, cost,
    cache hit rate, when it was created and last active. ``state`` keeps chats in one
    state, ``search`` those whose title contains it (any case), ``top_level=true`` the
    user's own chats only; a cursor is bound to the filters it was made with. A chat whose
    kernel died while it ran reads ``interrupted``. Errors: 400 (bad parameter or cursor),
    503 with ``Retry-After``, 500. No database yet: no chats.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            query = ChatsQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        await self._answer(
            partial(
                self.lists.chats,
                cursor=query.cursor,
                limit=query.limit,
                state=query.state,
                search=query.search,
                top_level=query.top_level,
            )
        )


class TasksHandler(_BoonbHandler):
    """``GET /boonb/api/tasks``: one keyset page of the project's background tasks, newest first.

    Answers ``{"tasks": [TaskUpdate], "next_cursor": str | null}``, each task as the
    ``task:update`` frame a cell's tasks pane renders. A task whose kernel died reads
    ``interrupted``; ``cancel_requested`` is a cancel its owner has not yet carried out.
    ``state`` keeps tasks in one state (``completed`` includes ``read``), ``search`` those
    whose title contains it (any case). Errors as for the chats list.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            query = TasksQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        await self._answer(
            partial(
                self.lists.tasks,
                cursor=query.cursor,
                limit=query.limit,
                state=query.state,
                search=query.search,
            )
        )


class TaskCancelHandler(_BoonbHandler):
    """``POST /boonb/api/tasks/{task_id}/cancel``: ask a task's owning kernel to cancel it.

    Recorded in the database (the server runs no agents); the owner carries it out at its
    next poll. Answers ``{"status": "cancelling" | "cancelled", "message", "task"}``
    (``cancelled`` for a retry no kernel had taken yet). Needs the XSRF token like every
    Jupyter POST. Errors: 400 (bad id, or a parameter), 404 (no such task), 409 (it has
    ended; an interrupted task's message gives the command that retries it), 503, 500.
    """

    @web.authenticated
    @authorized
    async def post(self, task_id: str) -> None:
        if not self._no_query():
            await self._answer(partial(self.lists.cancel_task, task_id))


class TaskRetryHandler(_BoonbHandler):
    """``POST /boonb/api/tasks/{task_id}/retry``: queue an ended task again.

    Only a failed, cancelled or interrupted task, and once. Inserts a new pending task
    nobody owns (same payload, ``attempt`` + 1, ``retry_of`` the old id); the first kernel
    of the project to poll claims and runs it. Answers ``{"status": "retrying", "message",
    "task"}`` with the new task. Errors: 400, 404, 409 (the task has not ended, or was
    already retried), 503, 500.
    """

    @web.authenticated
    @authorized
    async def post(self, task_id: str) -> None:
        if not self._no_query():
            await self._answer(partial(self.lists.retry_task, task_id))


class RunCancelHandler(_BoonbHandler):
    """``POST /boonb/api/orchestrator/runs/{run_id}/cancel``: ask a run's kernel to cancel it.

    Answers ``{"status": "cancelling", "message", "run"}``; the kernel running it carries
    it out at its next poll. Errors: 400, 404, 409 (it has ended, or its kernel died), 503,
    500.
    """

    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        if not self._no_query():
            await self._answer(partial(self.lists.cancel_run, run_id))


def handlers(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """URL patterns (under the server's base URL) and their handlers."""
    api = url_path_join(base_url, "boonb", "api")
    orchestrator = url_path_join(api, "orchestrator")
    return [
        (url_path_join(orchestrator, "workflows"), WorkflowsHandler),
        (url_path_join(orchestrator, "runs"), RunsHandler),
        (url_path_join(orchestrator, "runs", r"(?P<run_id>[^/]+)"), RunHandler),
        (url_path_join(orchestrator, "runs", r"(?P<run_id>[^/]+)", "cancel"), RunCancelHandler),
        (url_path_join(api, "chats"), ChatsHandler),
        (url_path_join(api, "tasks"), TasksHandler),
        (url_path_join(api, "tasks", r"(?P<task_id>[^/]+)", "cancel"), TaskCancelHandler),
        (url_path_join(api, "tasks", r"(?P<task_id>[^/]+)", "retry"), TaskRetryHandler),
        (url_path_join(api, "traces", r"(?P<root_id>[^/]+)", "tree"), TreeHandler),
        (url_path_join(api, "chats", r"(?P<chat_id>[^/]+)", "traces"), TracesHandler),
        (url_path_join(api, "traces", r"(?P<trace_id>[^/]+)"), TraceDetailHandler),
    ]
