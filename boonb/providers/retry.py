"""How long to wait before retrying, and what an HTTP error status means."""

from __future__ import annotations

import json
import re
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
        # The header is the standard; the text hint is what OpenAI, Groq and Gemini send
        # when a gateway drops the header or the provider never sets it.
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            retry_after = parse_retry_hint(message)
        return RateLimitError(status, message, retry_after=retry_after)
    if status >= 500:
        return ServerError(status, message)
    return ProviderHTTPError(status, message)


_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
# One "<number><unit>" step; longer unit names first so "ms" is not read as "m" + "s".
_STEP = (r"(\d+(?:\.\d+)?)\s*(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|h)"
         r"(?![a-z])")
_RETRY_HINT = re.compile(
    rf"(?:try again|retry)\s+(?:in|after)\s+((?:{_STEP}\s*)+)", re.IGNORECASE
)


def parse_retry_hint(message: str) -> float | None:
    """Seconds from a wait the server wrote in words; ``None`` when there is none.

    Understands "try again in 579ms", "Please try again in 1.5s", "try again in 1m30s",
    "retry after 2 seconds" and "Please retry in 37.4s".
    """
    match = _RETRY_HINT.search(message)
    if match is None:
        return None
    steps = re.findall(_STEP, match.group(1), flags=re.IGNORECASE)
    return sum(float(number) * _DURATION_UNITS[unit.lower()] for number, unit in steps)


def _server_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text[:500]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return _with_upstream_detail(str(error["message"]), error.get("metadata"))[:1000]
        if isinstance(error, str):
            return error[:500]
    return text[:500]


def _with_upstream_detail(message: str, metadata: object) -> str:
    """Add what a gateway relays from the real provider (OpenRouter's ``metadata.raw``).

    OpenRouter's own message is then only "Provider returned error"; the provider's words,
    often with the wait it wants, are in ``raw`` (plain text, or the upstream's JSON body).
    """
    if not isinstance(metadata, dict):
        return message
    raw = metadata.get("raw")
    detail = _server_message(raw.encode()) if isinstance(raw, str) and raw.strip() else ""
    if not detail or detail in message:
        return message
    provider = metadata.get("provider_name")
    source = f" ({provider})" if isinstance(provider, str) and provider else ""
    return f"{message}{source}: {detail}"
