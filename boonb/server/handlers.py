"""REST handlers: authenticated, thin, their query parameters validated by pydantic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web

from boonb.server.traces import ChatNotFound, ProjectTraces
from boonb.store import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    DatabaseLocked,
    DatabaseUnusable,
    InvalidCursor,
    InvalidLimit,
    InvalidQuery,
)

# Seconds a client is told to wait after a 503 for a database another process held.
RETRY_AFTER_S = 2

# Query arguments Jupyter itself reads (token auth, XSRF), not ours to refuse.
_JUPYTER_ARGUMENTS = frozenset({"token", "_xsrf"})


class TraceQuery(BaseModel):
    """Query parameters of ``GET .../chats/{id}/traces``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    @classmethod
    def from_arguments(cls, arguments: dict[str, list[bytes]]) -> TraceQuery:
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
            raise _invalid(exc, values) from None


def _invalid(exc: ValidationError, values: dict[str, str]) -> InvalidQuery:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    field = TraceQuery.model_fields.get(name)
    if field is None:
        known = ", ".join(TraceQuery.model_fields)
        return InvalidQuery(f"unknown query parameter {name!r}; known: {known}")
    message = f"{name} must be {field.description}, got {values.get(name)!r}"
    if name == "limit":
        return InvalidLimit(message)
    if name == "cursor":
        return InvalidCursor(message)
    return InvalidQuery(message)


class TracesHandler(APIHandler):
    """``GET /boonb/api/chats/{chat_id}/traces``: one keyset page of a chat's traces.

    Answers ``{"traces": [...], "next_cursor": str | null}``; errors are
    ``{"error": {"type", "message"}}`` with 400 (bad parameter or chat id), 404
    (unknown chat), 503 with ``Retry-After`` (database held by another process too
    long) or 500 (the database path is unusable).
    """

    auth_resource = "boonb"

    @property
    def traces(self) -> ProjectTraces:
        traces: ProjectTraces = self.settings["boonb_traces"]
        return traces

    @web.authenticated
    @authorized
    async def get(self, chat_id: str) -> None:
        try:
            query = TraceQuery.from_arguments(self.request.query_arguments)
            # DuckDB calls block (and may wait out another process's lock): keep
            # them off the event loop.
            page = await asyncio.to_thread(
                self.traces.page,
                chat_id,
                cursor=query.cursor,
                limit=query.limit,
                turn_number=query.turn_number,
            )
        except InvalidQuery as exc:
            self._error(400, exc)
        except ChatNotFound as exc:
            self._error(404, exc)
        except DatabaseLocked as exc:
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self._error(503, exc)
        except DatabaseUnusable as exc:
            self._error(500, exc)
        else:
            self.finish(page.model_dump_json())

    def _error(self, status: int, exc: Exception) -> None:
        self.log.info("boonb: %s %s: %s", status, type(exc).__name__, exc)
        body: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        self.set_status(status)
        self.finish(json.dumps(body))


def handlers(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """URL patterns (under the server's base URL) and their handlers."""
    chats = url_path_join(base_url, "boonb", "api", "chats")
    return [(url_path_join(chats, r"(?P<chat_id>[^/]+)", "traces"), TracesHandler)]
