"""How long to wait before retrying, and what an HTTP error status means."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from .errors import AuthenticationError, ProviderHTTPError, RateLimitError, ServerError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Deterministic exponential backoff: ``backoff * 2**attempt``, capped.

    A 429's ``Retry-After`` (seconds or an HTTP date) replaces the computed delay,
    capped at ``max_retry_after``.
    """

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return min(self.backoff * 2**attempt, self.max_backoff)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from either form the header allows; ``None`` if absent/bad."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def http_error(
    response: httpx.Response, body: bytes, *, key_hint: str, secret: str | None
) -> ProviderHTTPError:
    """Build the exception for an error response, scrubbing ``secret`` from the server's text."""
    status = response.status_code
    message = _server_message(body) or response.reason_phrase or "no message"
    if secret:
        message = message.replace(secret, "***")
    if status in (401, 403):
        return AuthenticationError(
            status, f"{message} -- the provider rejected the API key; {key_hint}"
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitError(status, message, retry_after=retry_after)
    if status >= 500:
        return ServerError(status, message)
    return ProviderHTTPError(status, message)


def _server_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text[:500]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return text[:500]
