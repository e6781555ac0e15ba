"""Pure helpers of the tasks service: a task's row, its progress, ids, payloads, messages."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from boonb.background.errors import InvalidTask, TaskStateError, UnknownTask
from boonb.background.live import LiveTask
from boonb.background.models import RETRYABLE, TaskPayload
from boonb.frames import TaskProgress, TaskUpdate, ToolTraceStart, TraceRecord
from boonb.store import Row
from boonb.store import tasks as task_rows

_PROGRESS_JSON: TypeAdapter[TaskProgress] = TypeAdapter(TaskProgress)


def task_row(live: LiveTask, *, owner: str, pid: int, host: str) -> Row:
    """The upsert of a task's row that its owner writes (see :func:`task_rows.owner_row`)."""
    u = live.update
    return task_rows.owner_row(
        {
            "id": u.task_id,
            "type": u.task_type,
            "state": u.state,
            "title": u.title,
            "chat_id": u.chat_id,
            "parent_trace_id": u.parent_trace_id,
            "parent_root_id": live.parent.root_id if live.parent is not None else None,
            "parent_chat_id": live.parent_chat_id,
            "owner": owner,
            "owner_pid": pid,
            "owner_host": host,
            "attempt": u.attempt,
            "retry_of": u.retry_of,
            "payload": live.payload.model_dump(mode="json"),
            "result": None if live.result is None else live.result.model_dump(mode="json"),
            "error": u.error,
            "progress": (
                None if u.progress is None else _PROGRESS_JSON.dump_python(u.progress, mode="json")
            ),
            "created_at": u.created_at,
            "started_at": u.started_at,
            "finished_at": u.finished_at,
            "updated_at": utc_now(),
        }
    )


def after_model_call(progress: TaskProgress, trace: TraceRecord) -> TaskProgress:
    """Progress once a model call of the subagent ended: its turn, tokens and cost added."""
    cost = trace.cost_usd
    return dataclasses.replace(
        progress,
        turn=trace.turn_number,
        tokens_used=progress.tokens_used + trace.tokens_used,
        cost_usd=progress.cost_usd if cost is None else (progress.cost_usd or 0) + cost,
    )


def after_tool_start(progress: TaskProgress, frame: ToolTraceStart) -> TaskProgress:
    """Progress once the subagent started a tool call: the last tool and when."""
    return dataclasses.replace(progress, last_tool=frame.tool_name, last_tool_at=frame.started_at)


@dataclass(frozen=True)
class LiveView:
    """A live task seen as a stored one (what :meth:`Tasks.retry` and lookups need)."""

    update: TaskUpdate
    payload: dict[str, Any]
    result: dict[str, Any] | None
    parent_root_id: uuid.UUID | None
    parent_chat_id: uuid.UUID | None

    @classmethod
    def of(cls, live: LiveTask) -> LiveView:
        return cls(
            update=live.update,
            payload=live.payload.model_dump(mode="json"),
            result=None if live.result is None else live.result.model_dump(mode="json"),
            parent_root_id=live.parent.root_id if live.parent is not None else None,
            parent_chat_id=live.parent_chat_id,
        )


def parse_task_id(task_id: uuid.UUID | str) -> uuid.UUID:
    """A task id from its text; :class:`UnknownTask` for text that is not one."""
    if isinstance(task_id, uuid.UUID):
        return task_id
    try:
        return uuid.UUID(str(task_id).strip())
    except ValueError:
        raise UnknownTask(
            f"{str(task_id)[:80]!r} is not a task id; give the whole task_id that "
            "spawn_subagent (or boonb.spawn) returned, e.g. 0b6f8a52-..."
        ) from None


def make_payload(**values: Any) -> TaskPayload:
    try:
        return TaskPayload.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidTask(f"the task cannot be spawned: {problems}") from None


def shown_state(state: str) -> str:
    """A task's state as people and models see it: ``read`` (its result collected) is completed."""
    return "completed" if state == "read" else state


def already_ended(update: TaskUpdate, action: str) -> TaskStateError:
    state = shown_state(update.state)
    hint = (
        f" Retry it to run it again (%tasks retry {update.task_id}, or .retry() on its handle)."
        if update.state in RETRYABLE
        else ""
    )
    return TaskStateError(
        f"task {update.task_id} has already ended ({state}); nothing to {action}.{hint}"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
