"""``fetch_url``: let a model read a web page, without letting it fill memory or hang."""

from __future__ import annotations

import asyncio
import codecs
from typing import Annotated, Any

import httpx
from pydantic import Field

from ..context import ToolContext
from ..definition import tool
from ..errors import ToolArgumentError, ToolError

MAX_REDIRECTS = 5
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)


@tool
async def fetch_url(
    context: ToolContext,
    url: str,
    max_bytes: Annotated[int | None, Field(ge=1)] = None,
) -> dict[str, Any]:
    """Fetch a web page or file over HTTP(S) with GET and return its text.

    Redirects are followed; large bodies are cut at a size limit ('truncated' says so); HTTP error
    statuses are returned, not raised, so check 'status'.

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        url: Absolute http:// or https:// URL.
        max_bytes: Read at most this many bytes of the body (the session's own limit
            still applies).

    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolArgumentError(f"argument 'url': {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ToolArgumentError(
            f"argument 'url': only absolute http:// and https:// URLs can be fetched, got {url!r}"
        )
    cap = context.fetch_max_bytes if max_bytes is None else min(max_bytes, context.fetch_max_bytes)
    try:
        async with asyncio.timeout(context.fetch_timeout):
            return await _get(parsed, cap=cap, timeout=context.fetch_timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise ToolError(
            f"fetching {url} timed out after {context.fetch_timeout:g}s; the server may be slow "
            "or down: try again later or another URL"
        ) from None
    except httpx.TooManyRedirects:
        raise ToolError(
            f"fetching {url} was redirected more than {MAX_REDIRECTS} times; giving up"
        ) from None
    except httpx.HTTPError as exc:
        raise ToolError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from None


async def _get(url: httpx.URL, *, cap: int, timeout: float) -> dict[str, Any]:
    async with (
        httpx.AsyncClient(
            follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout
        ) as client,
        client.stream("GET", url) as response,
    ):
        content_type = response.headers.get("content-type", "")
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            body += chunk
            # Stop one chunk past the cap: a body of exactly ``cap`` bytes is not truncated.
            if len(body) > cap:
                truncated = True
                del body[cap:]
                break
        return {
            "url": str(response.url),
            "status": response.status_code,
            "content_type": content_type,
            "text": _text(bytes(body), content_type, response.encoding, truncated=truncated),
            "truncated": truncated,
        }


def _text(body: bytes, content_type: str, encoding: str | None, *, truncated: bool) -> str:
    media = content_type.split(";")[0].strip().lower()
    if media and not any(t in media for t in _TEXT_TYPES) and b"\x00" in body[:8192]:
        return f"[{len(body)} bytes of binary content ({media}) not shown]"
    try:
        decoder = codecs.getincrementaldecoder(encoding or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # final=False on a cut body: a multi-byte character split at the cap is dropped, not mangled.
    return decoder.decode(body, final=not truncated)
