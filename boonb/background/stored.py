"""The project's tasks as the table tells them; those whose kernel died read ``interrupted``."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from boonb.background.errors import UnknownTask
from boonb.background.records import utc_now
from boonb.frames import TaskUpdate
from boonb.store import Store
from boonb.store import tasks as task_rows
from boonb.store.liveness import process_alive


class StoredTasks:
    """The service's reads of the ``tasks`` table: any task by id, the newest, other kernels'.

    ``store`` is read at each use (``%boonb config`` may change it). ``owner``, ``pid`` and
    ``host`` are this kernel's: an active task of another kernel of this host whose process
    is gone is marked ``interrupted`` in the table as it is read.
    """

    def __init__(self, store: Callable[[], Store], *, owner: str, pid: int, host: str) -> None:
        self._store = store
        self.owner = owner
        self.pid = pid
        self.host = host

    def load(self, task_id: uuid.UUID) -> task_rows.StoredTask:
        """The task's row as it now reads; :class:`UnknownTask` if there is none."""
        stored = task_rows.load(self._store().db, task_id)
        if stored is None:
            raise UnknownTask(
                f"there is no task {task_id} in this project; list the project's tasks with "
                "%tasks list"
            )
        (stored,) = self.interrupt_dead([stored])
        return stored

    def recent(
        self,
        *,
        limit: int,
        spawned_by: uuid.UUID | None,
        before: task_rows.TaskCursor | None,
    ) -> list[task_rows.StoredTask]:
        """The newest rows (see :func:`task_rows.recent`), as they now read."""
        stored = task_rows.recent(
            self._store().db, limit=limit, spawned_by=spawned_by, before=before
        )
        return self.interrupt_dead(stored)

    def others_now(
        self, *, spawned_by: uuid.UUID | None = None
    ) -> tuple[list[uuid.UUID], task_rows.TaskCounts]:
        """Other kernels' active tasks (ids) and counts; see :meth:`Tasks.others_now`."""
        db = self._store().db
        active: list[uuid.UUID] = []
        dead: list[uuid.UUID] = []
        for task_id, pid, host in task_rows.active_of_others(db, self.owner, spawned_by=spawned_by):
            gone = host == self.host and pid != self.pid and not process_alive(pid)
            (dead if gone else active).append(task_id)
        if dead:
            task_rows.mark_interrupted(db, dead, now=utc_now())
        return active, task_rows.count_of_others(db, self.owner, spawned_by=spawned_by)

    def others_to_watch(
        self, *, also: Sequence[uuid.UUID] = (), spawned_by: uuid.UUID | None = None
    ) -> tuple[list[TaskUpdate], task_rows.TaskCounts]:
        """Other kernels' tasks to poll, and counts; see :meth:`Tasks.others_to_watch`."""
        db = self._store().db
        stored = task_rows.others_to_watch(db, self.owner, also=also, spawned_by=spawned_by)
        watched = [s.update for s in self.interrupt_dead(stored)]
        return watched, task_rows.count_of_others(db, self.owner, spawned_by=spawned_by)

    def interrupt_dead(self, stored: list[task_rows.StoredTask]) -> list[task_rows.StoredTask]:
        """Mark ``interrupted`` the active tasks whose kernel died (of this host).

        Returns the rows as they now read.
        """
        dead = {
            s.update.task_id
            for s in stored
            if s.update.state in task_rows.ACTIVE
            and s.update.owner != self.owner
            and s.owner_host == self.host
            and s.owner_pid != self.pid
            and not process_alive(s.owner_pid)
        }
        if not dead:
            return stored
        task_rows.mark_interrupted(self._store().db, dead, now=utc_now())
        return [
            dataclasses.replace(
                s,
                update=dataclasses.replace(
                    s.update,
                    state="interrupted",
                    cancel_requested=False,
                    error=s.update.error or "the kernel running it ended before it finished",
                ),
            )
            if s.update.task_id in dead
            else s
            for s in stored
        ]
