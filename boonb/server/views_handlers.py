"""The side panels' endpoints: the cell views over REST, the sidebar's activity, images.

``POST /boonb/api/views/{view}``, ``GET /boonb/api/views/{view}/frames`` (see
:mod:`boonb.server.views`), ``GET /boonb/api/activity`` and ``GET
/boonb/api/attachments/{sha256}``; the lists, traces and orchestrator endpoints are in
:mod:`boonb.server.handlers`, whose base handler (auth, errors as JSON, 503 with
``Retry-After``) these share.
"""

from __future__ import annotations

import asyncio
from functools import partial

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import Field, ValidationError
from tornado import web

from boonb.server.handlers import _BoonbHandler, _Query
from boonb.server.views import VIEW_NAMES, ProjectViews, UnknownView, ViewRequest
from boonb.server.views_images import ImageNotFound, read_image
from boonb.store import InvalidQuery


class FramesQuery(_Query):
    """Query parameters of ``GET /boonb/api/views/{view}/frames``."""

    target: str | None = Field(
        default=None,
        min_length=2,
        max_length=500,
        description='the view\'s target as JSON, e.g. {"chat_id": "..."}',
    )
    after: str | None = Field(
        default=None, min_length=1, max_length=100_000, description="the cursor of the last poll"
    )


class ImageQuery(_Query):
    """Query parameters of ``GET /boonb/api/attachments/{sha256}``: the rest of its reference."""

    mime: str = Field(min_length=1, max_length=40, description="the image's mime type")
    size_bytes: int = Field(default=0, ge=0, description="a non-negative integer")
    width: int = Field(ge=1, le=1_000_000, description="the image's width in pixels")
    height: int = Field(ge=1, le=1_000_000, description="the image's height in pixels")
    max_width: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="a thumbnail's width, as the views ask for it (600)",
    )


class _ViewsHandler(_BoonbHandler):
    """What the views' handlers share: the project's views."""

    @property
    def views(self) -> ProjectViews:
        views: ProjectViews = self.settings["boonb_views"]
        return views

    def _known_view(self, view: str) -> bool:
        """Refuse (404) a view that does not exist; True if it does."""
        if view not in VIEW_NAMES:
            known = ", ".join(VIEW_NAMES)
            self._error(404, UnknownView(f"no view {view!r}; the views are {known}"))
            return False
        return True


class ViewHandler(_ViewsHandler):
    """``POST /boonb/api/views/{view}``: a cell view's request, answered as its widget would.

    ``view`` is ``traceviewer``, ``tasks`` or ``orchestrator``. The body is ``{"target":
    {...}, "request": <the JSON the view sends on its comm>}`` (target: ``{"chat_id"}``,
    ``{}``, ``{"run_id": id | null}``); the answer ``{"replies": [...]}``, the messages the
    cell's widget would have sent back (a request the view got wrong is a reply of kind
    ``error``, as from a kernel). Cancel and retry are recorded for the owning kernel; Run
    and Re-run answer an error with the notebook command (the server runs no workflow).
    With ``"frames": true`` in the body the answer also carries ``"frames"``, the first
    poll's cursor taken before the read (a panel's first page and polling in one trip).
    Needs the XSRF token like every Jupyter POST. Errors: 400 (body or target), 404 (no
    such view, or the target's chat or run is not stored), 503 with ``Retry-After``, 500.
    """

    @web.authenticated
    @authorized
    async def post(self, view: str) -> None:
        if not self._known_view(view) or self._no_query():
            return
        try:
            body = ViewRequest.model_validate_json(self.request.body or b"")
        except ValidationError as exc:
            self._error(
                400, InvalidQuery(f'the body must be {{"target", "request"}}: {_first(exc)}')
            )
            return
        await self._answer(partial(self.views.answer, view, body))


class ViewFramesHandler(_ViewsHandler):
    """``GET /boonb/api/views/{view}/frames``: what a cell widget would have pushed since then.

    Answers ``{"frames": [...], "cursor": str, "live": bool}``: the frames a cell's widget
    would have pushed since ``after`` (none without it: the first poll gives the cursor to
    go on from), built from the rows changed since then, and whether anything the view
    shows still runs (false: stop polling). ``target`` is the view's target as JSON (none
    for tasks). Errors: 400 (bad target or cursor), 404 (no such view, chat or run), 503
    with ``Retry-After``, 500.
    """

    @web.authenticated
    @authorized
    async def get(self, view: str) -> None:
        if not self._known_view(view):
            return
        try:
            query = FramesQuery.from_arguments(self.request.query_arguments)
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        await self._answer(partial(self.views.frames, view, query.target, query.after))


class ActivityHandler(_ViewsHandler):
    """``GET /boonb/api/activity``: what runs in the project now; the sidebar's one cheap poll.

    Answers ``{"chats_running", "tasks_running", "tasks_pending", "runs_running",
    "version"}``; ``version`` changes whenever a chat, task or run row changes (poll the
    lists again then). Rows of a dead kernel count as interrupted, not running. Errors:
    400 (any parameter), 503 with ``Retry-After``, 500. No database yet: all zero.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        if not self._no_query():
            await self._answer(self.views.activity)


class ImageHandler(_ViewsHandler):
    """``GET /boonb/api/attachments/{sha256}``: a stored image's bytes, or a thumbnail.

    For the trace viewer in a panel (a cell's view has them over its comm). Query: the
    rest of the image's reference (``mime``, ``width``, ``height``, ``size_bytes``) and
    ``max_width`` for a thumbnail (only the width the views ask for). Answers the bytes
    with their ``Content-Type`` and ``X-Image-Width`` / ``X-Image-Height``, read from the
    stored file. Errors: 400 (bad reference, one that does not match the stored file, or
    another thumbnail width), 404 (no such file in the project), 403 without a token.
    """

    @web.authenticated
    @authorized
    async def get(self, sha256: str) -> None:
        try:
            query = ImageQuery.from_arguments(self.request.query_arguments)
            image = await asyncio.to_thread(
                read_image,
                self.views.project,
                sha256,
                mime=query.mime,
                size_bytes=query.size_bytes,
                width=query.width,
                height=query.height,
                max_width=query.max_width,
            )
        except InvalidQuery as exc:
            self._error(400, exc)
            return
        except ImageNotFound as exc:
            self._error(404, exc)
            return
        self.set_header("X-Image-Width", str(image.width))
        self.set_header("X-Image-Height", str(image.height))
        self.set_header("Cache-Control", "private, max-age=86400")  # content-addressed
        self.finish(image.data, set_content_type=image.mime)


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def view_handlers(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """URL patterns (under the server's base URL) of the side panels' endpoints."""
    api = url_path_join(base_url, "boonb", "api")
    return [
        (url_path_join(api, "views", r"(?P<view>[^/]+)"), ViewHandler),
        (url_path_join(api, "views", r"(?P<view>[^/]+)", "frames"), ViewFramesHandler),
        (url_path_join(api, "activity"), ActivityHandler),
        (url_path_join(api, "attachments", r"(?P<sha256>[^/]+)"), ImageHandler),
    ]


__all__ = [
    "ActivityHandler",
    "FramesQuery",
    "ImageHandler",
    "ImageQuery",
    "ViewFramesHandler",
    "ViewHandler",
    "view_handlers",
]
