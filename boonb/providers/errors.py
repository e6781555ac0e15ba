"""The one exception hierarchy of ``boonb.providers``.

Every message says what went wrong and what to do next. No message, ``repr`` or log
line ever contains an API key or an ``Authorization`` header.
"""

from __future__ import annotations

from boonb.errors import ProviderError


class ProviderHTTPError(ProviderError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class RateLimitError(ProviderHTTPError):
    """HTTP 429: too many requests; retried automatically, raised once retries run out."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class ServerError(ProviderHTTPError):
    """HTTP 5xx: the provider failed; retried automatically, raised once retries run out."""


class AuthenticationError(ProviderHTTPError):
    """HTTP 401/403: the API key is missing, wrong or not allowed to use the model."""


class ProviderTimeout(ProviderError):
    """No answer (or no next stream chunk) within the client's timeout."""


class ProviderConnectionError(ProviderError):
    """The server could not be reached (refused, DNS, TLS, reset)."""


class ResponseFormatError(ProviderError):
    """The server's answer is not a chat-completions response we can read."""


class StreamError(ResponseFormatError):
    """A streamed answer broke: malformed ``data:`` JSON, or it ended before ``[DONE]``.

    A stream that breaks after events were already yielded is never retried (the caller
    has seen part of the answer); it raises this error instead.
    """


class CapabilityError(ProviderError):
    """The request needs something the model cannot do (images, tools); nothing was sent."""


class ToolArgumentsError(ProviderError, ValueError):
    """A tool call's ``arguments`` string is not a JSON object."""
