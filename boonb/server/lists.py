"""Blocking reads and requests for the side panels' handlers; call them in a worker thread.

Chats and tasks lists, and the requests the panels make of a task or a run (cancel,
retry), recorded in the project database for the owning kernel to carry out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from boonb.server.database import ProjectDatabase
from boonb.store import Database, InvalidCursor
from boonb.store import requests_from_server as requests
from boonb.store.project_lists import (
    ChatPage,
    ListedRunPage,
    TaskPage,
    chat_page,
    run_page,
    task_page,
)

T = TypeVar("T")


class ProjectLists:
    """The project's chats, tasks and runs lists, and the requests made of tasks and runs.

    Like :class:`boonb.server.traces.ProjectTraces`, it never creates the database: until a
    kernel wrote one, every list is empty and every task or run unknown.
    """

    def __init__(self, database: ProjectDatabase) -> None:
        self.database = database
        self.path = database.path

    def chats(
        self,
        *,
        cursor: str | None,
        limit: int,
        state: str | None,
        search: str | None,
        top_level: bool,
    ) -> ChatPage:
        return self._page(
            lambda db: chat_page(
                db, cursor=cursor, limit=limit, state=state, search=search, top_level=top_level
            ),
            cursor,
            ChatPage(chats=[], next_cursor=None),
        )

    def tasks(
        self, *, cursor: str | None, limit: int, state: str | None, search: str | None
    ) -> TaskPage:
        return self._page(
            lambda db: task_page(db, cursor=cursor, limit=limit, state=state, search=search),
            cursor,
            TaskPage(tasks=[], next_cursor=None),
        )

    def runs(
        self, *, cursor: str | None, limit: int, state: str | None, search: str | None
    ) -> ListedRunPage:
        return self._page(
            lambda db: run_page(db, cursor=cursor, limit=limit, state=state, search=search),
            cursor,
            ListedRunPage(runs=[], next_cursor=None),
        )

    def cancel_task(self, task_id: str) -> requests.TaskRequestAnswer:
        return requests.cancel_task(self._existing(), task_id)

    def retry_task(self, task_id: str) -> requests.TaskRequestAnswer:
        return requests.retry_task(self._existing(), task_id)

    def cancel_run(self, run_id: str) -> requests.RunRequestAnswer:
        return requests.cancel_run(self._existing(), run_id)

    def _page(self, read: Callable[[Database], T], cursor: str | None, empty: T) -> T:
        db = self._database()
        if db is not None:
            return read(db)
        if cursor is not None:  # no database signed it: refuse it as a page would
            raise InvalidCursor(
                "cursor signature does not match: it belongs to another database; "
                "start from the first page"
            )
        return empty

    def _existing(self) -> Database:
        db = self._database()
        if db is None:
            raise requests.NotStored(
                f"nothing is stored in {self.path} yet (it does not exist): no kernel of this "
                "project has run an agent or a workflow"
            )
        return db

    def _database(self) -> Database | None:
        return self.database.get()
