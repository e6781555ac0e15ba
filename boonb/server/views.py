"""The cell widgets' views in side panels: their requests answered, and their frames, over REST.

A panel runs the same view as a cell (the trace viewer, the tasks pane, the orchestrator);
where a cell's view talks to its kernel over a comm, a panel's talks to the server:

- ``POST /boonb/api/views/{view}`` with ``{"target", "request"}`` answers ``{"replies": [...]}``,
  the messages the cell's widget would have sent back for that request, read from the
  project database (the server runs no agents: a request only a kernel can carry out
  answers the view's error saying what to run in a notebook); with ``"frames": true`` the
  answer also carries the first poll's cursor, taken before the read;
- ``GET /boonb/api/views/{view}/frames?target=...&after=...`` answers ``{"frames", "cursor",
  "live"}``: the frames the cell's widget would have pushed since ``after``, built from
  the rows changed since then, and whether anything it shows still runs.

The cursor is opaque and signed with the database's key, bound to its view and target.
Without ``after`` there are no frames, only the cursor to poll from. While no database
exists the cursor is ``"0"``; once one does, ``"0"`` is refused like any stale cursor (the
panel starts again without ``after`` and reads the view afresh) rather than read as "every
row since the start", which one poll could not bound.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from boonb.server import views_runs, views_tasks, views_traces
from boonb.server.database import ProjectDatabase
from boonb.store import Database, InvalidCursor, InvalidQuery
from boonb.store.activity import NO_ACTIVITY, Activity, Timed, activity

ViewName = Literal["traceviewer", "tasks", "orchestrator"]
VIEW_NAMES: tuple[str, ...] = get_args(ViewName)


class UnknownView(InvalidQuery, LookupError):
    """No view of that name (a 404)."""


class InvalidTarget(InvalidQuery):
    """The target is not what the view takes."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceTarget(_Strict):
    """What a trace viewer panel shows: one chat."""

    chat_id: uuid.UUID


class TasksTarget(_Strict):
    """The tasks pane in a panel shows the whole project's tasks: it takes nothing."""


class RunsTarget(_Strict):
    """The orchestrator (``run_id`` None) or one run's pane."""

    run_id: uuid.UUID | None = None


_TARGETS: dict[str, type[_Strict]] = {
    "traceviewer": TraceTarget,
    "tasks": TasksTarget,
    "orchestrator": RunsTarget,
}


class ViewRequest(_Strict):
    """The body of ``POST /boonb/api/views/{view}``."""

    target: dict[str, JsonValue]
    """``{"chat_id"}`` for the trace viewer, ``{}`` for tasks, ``{"run_id"}`` (or null) for
    the orchestrator."""
    request: JsonValue
    """The request exactly as the view sends it on a cell widget's comm."""
    frames: bool = False
    """Also start polling: answer the first poll's cursor (as ``GET .../frames`` without
    ``after`` would), taken before the request's read, so a panel's first page and its
    polling come in one round trip and nothing changed after the page's read is missed."""


class ViewFrames(BaseModel):
    """The frames a cell's widget would have pushed since the cursor."""

    frames: list[JsonValue]
    """In the order the widget would have pushed them."""
    cursor: str
    """Pass back as ``after`` in the next poll."""
    live: bool
    """Whether anything the view shows still runs; False: stop polling."""


class ViewReplies(BaseModel):
    """What a cell's widget would have sent back for the request."""

    replies: list[JsonValue]
    """Zero or more messages, each as the widget's protocol types it (``kind`` first)."""
    frames: ViewFrames | None = None
    """With ``frames`` asked: the first poll (no frames, its cursor and ``live``), taken
    before the replies were read: changes between the two come in both, none in neither."""


def parse_target(view: str, target: Any) -> Any:
    """The view's target, validated; :class:`UnknownView` or :class:`InvalidTarget`."""
    kind = _TARGETS.get(view)
    if kind is None:
        raise UnknownView(f"no view {view!r}; the views are {', '.join(VIEW_NAMES)}")
    if isinstance(target, str):
        try:
            target = json.loads(target)
        except ValueError:
            raise InvalidTarget(f"target must be a JSON object, got {target!r}") from None
    try:
        return kind.model_validate(target if target is not None else {})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "target"
        raise InvalidTarget(
            f"target of the {view} view: {where}: {error['msg']} (it takes {_describe(kind)})"
        ) from None


def _describe(kind: type[_Strict]) -> str:
    fields = ", ".join(f'"{name}"' for name in kind.model_fields)
    return f"{{{fields}}}" if fields else "{}"


class ProjectViews:
    """The views' answers and frames, and the sidebar's activity, read from the project database.

    Like :class:`boonb.server.traces.ProjectTraces`, it never creates the database.
    """

    def __init__(self, project: Path, database: ProjectDatabase) -> None:
        self.project = project
        self.database = database
        self.path = database.path
        self.last_activity_hold: Timed | None = None
        """How long the last activity read held the database, part by part, for benchmarks."""

    def answer(self, view: str, body: ViewRequest) -> ViewReplies:
        target = parse_target(view, body.target)
        # The cursor first: a change stored between it and the read below comes in the page
        # and again in a poll (the views drop what is not newer), never in neither.
        start = self._frames(view, target, None) if body.frames else None
        db = self._database()
        replies: list[BaseModel]
        match target:
            case TraceTarget():
                replies = views_traces.answer(db, self.path, target.chat_id, body.request)
            case TasksTarget():
                replies = views_tasks.answer(db, body.request)
            case RunsTarget():
                replies = views_runs.answer(db, self.project, self.path, body.request)
            case _:
                raise AssertionError(target)
        return ViewReplies(replies=[_json(reply) for reply in replies], frames=start)

    def frames(self, view: str, target_text: str | None, after: str | None) -> ViewFrames:
        return self._frames(view, parse_target(view, target_text), after)

    def _frames(self, view: str, target: Any, after: str | None) -> ViewFrames:
        db = self._database()
        scope = f"{view}:{target.model_dump_json()}"
        state = None if after is None else self._decode(after, scope, db)
        frames: list[BaseModel]
        match target:
            case TraceTarget():
                frames, state, live = views_traces.frames(db, self.path, target.chat_id, state)
            case TasksTarget():
                frames, state, live = views_tasks.frames(db, state)
            case RunsTarget():
                frames, state, live = views_runs.frames(db, self.path, target.run_id, state)
            case _:
                raise AssertionError(target)
        cursor = self._encode(state, scope, db)
        return ViewFrames(frames=[_json(frame) for frame in frames], cursor=cursor, live=live)

    def activity(self) -> Activity:
        db = self._database()
        if db is None:
            return NO_ACTIVITY
        timed = activity(db)
        self.last_activity_hold = timed
        return timed.activity

    # The cursor: the view's state after a poll, signed, bound to its view and target.

    def _encode(self, state: dict[str, Any], scope: str, db: Database | None) -> str:
        payload = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        if db is None:
            # No database yet: nothing to sign with, and nothing seen; the state is empty.
            return "0"
        return f"{_b64(payload)}.{_b64(_sign(payload, scope, db.cursor_key))}"

    def _decode(self, cursor: str, scope: str, db: Database | None) -> dict[str, Any]:
        if cursor == "0" and db is None:
            return {}  # nothing seen yet, and still nothing stored
        bad = InvalidCursor(
            "after is not a cursor of this view and target (it was cut or edited, made "
            "before the database existed, or it belongs to another view, target or "
            "database); pass back the last poll's "
            "cursor, or poll without after to start again"
        )
        if db is None or cursor.count(".") != 1:
            raise bad
        body, signature = cursor.split(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise bad from None
        if not hmac.compare_digest(given, _sign(payload, scope, db.cursor_key)):
            raise bad
        try:
            state = json.loads(payload)
        except ValueError:
            raise bad from None
        if not isinstance(state, dict):
            raise bad
        return state

    def _database(self) -> Database | None:
        return self.database.get()


def _json(message: BaseModel) -> JsonValue:
    # Subclasses as themselves: a page's trace keeps its previews (``input_cut``).
    value: JsonValue = message.model_dump(mode="json", serialize_as_any=True)
    return value


def _sign(payload: bytes, scope: str, secret: bytes) -> bytes:
    mac = hmac.new(secret, b"views\0" + scope.encode() + b"\0" + payload, hashlib.sha256)
    return mac.digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = [
    "VIEW_NAMES",
    "InvalidTarget",
    "ProjectViews",
    "RunsTarget",
    "TasksTarget",
    "TraceTarget",
    "UnknownView",
    "ViewFrames",
    "ViewName",
    "ViewReplies",
    "ViewRequest",
]
