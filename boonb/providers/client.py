"""``ChatClient``: one OpenAI-compatible chat-completions client on ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from .assemble import StreamAssembler, parse_completion
from .checks import check_request
from .errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
)
from .profiles import Profile
from .results import ChatResult, Completed, ReasoningDelta, StreamEvent, TextDelta, ToolCallStarted
from .retry import RetryPolicy, http_error
from .sse import DONE, SSEDecoder

logger = logging.getLogger("boonb.providers")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_RETRYABLE = (RateLimitError, ServerError, ProviderTimeout, ProviderConnectionError)
_RESERVED_OPTIONS = frozenset({"model", "messages", "tools", "stream"})


class ChatClient:
    """Chat completions against one profile's endpoint, streamed or not, with retries.

    Retries (``max_retries``, delays ``backoff * 2**attempt`` or a 429's ``Retry-After``)
    cover connection errors, timeouts, 429 and 5xx, and happen only while nothing has been
    handed to the caller. Once a stream has yielded an event, a broken connection raises
    ``StreamError`` and a stall raises ``ProviderTimeout``; neither is retried, because
    the caller has already seen part of the answer.

    ``timeout`` bounds connecting, waiting for the response headers, and every wait for
    the next stream line, so a stalled stream fails instead of hanging. ``sleep`` is the
    coroutine used to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.profile = profile
        self.model = model or profile.default_model
        self.timeout = timeout
        self.retry_policy = RetryPolicy(max_retries=max_retries, backoff=backoff)
        self._sleep = sleep
        env = profile.api_key_env
        self._api_key = api_key if api_key is not None else (os.environ.get(env) if env else None)
        headers = {"Accept": "application/json, text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.AsyncClient(
            base_url=profile.base_url, headers=headers, timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "not set"
        return (f"ChatClient(profile={self.profile.name!r}, base_url={self.profile.base_url!r}, "
                f"model={self.model!r}, api_key={key})")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        await self._http.aclose()

    # -- public calls -----------------------------------------------------------------

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        model: str | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Stream one call: text/reasoning deltas, tool-call starts, then ``Completed``."""
        model = model or self.model
        check_request(self.profile, model, messages, tools)
        body = self._body(messages, tools, model, options, stream=True)
        started = time.perf_counter()
        attempt = 0
        while True:
            yielded = 0
            try:
                async with aclosing(self._stream_once(body, model)) as events:
                    async for event in events:
                        if isinstance(event, Completed):
                            self._finish(event.result, model, started, attempt)
                        yielded += 1
                        yield event
                return
            except _RETRYABLE as exc:
                if yielded:
                    if isinstance(exc, ProviderConnectionError):
                        raise StreamError(
                            f"the stream broke after {yielded} event(s) and cannot be retried "
                            f"without repeating output: {exc}"
                        ) from exc
                    raise
                await self._backoff_or_raise(exc, attempt)
                attempt += 1

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        model: str | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
        stream: bool = True,
        **options: Any,
    ) -> ChatResult:
        """Run one call to the end and return its result.

        ``on_event`` sees the same events as :meth:`stream`; with ``stream=False`` the
        whole answer arrives at once and the events are replayed from it.
        """
        if stream:
            result: ChatResult | None = None
            async for event in self.stream(messages, tools=tools, model=model, **options):
                if on_event is not None:
                    on_event(event)
                if isinstance(event, Completed):
                    result = event.result
            if result is None:  # _stream_once always ends with Completed or raises
                raise StreamError("the stream ended without a result")
            return result
        model = model or self.model
        check_request(self.profile, model, messages, tools)
        body = self._body(messages, tools, model, options, stream=False)
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                result = await self._complete_once(body, model)
                break
            except _RETRYABLE as exc:
                await self._backoff_or_raise(exc, attempt)
                attempt += 1
        self._finish(result, model, started, attempt)
        if on_event is not None:
            for event in _replay(result):
                on_event(event)
        return result

    # -- one attempt --------------------------------------------------------------------

    async def _stream_once(
        self, body: dict[str, Any], model: str
    ) -> AsyncGenerator[StreamEvent, None]:
        request = self._http.build_request("POST", "chat/completions", json=body)
        response = await self._guard(self._http.send(request, stream=True))
        try:
            if response.status_code >= 400:
                raw = await self._guard(response.aread())
                raise http_error(response, raw, key_hint=self._key_hint(),
                                 secret=self._api_key)
            decoder = SSEDecoder()
            assembler = StreamAssembler(model=model)
            lines = aiter(response.aiter_lines())
            while True:
                try:
                    line = await self._guard(anext(lines))
                except StopAsyncIteration:
                    _check_tail(decoder.flush())
                    break
                data = decoder.feed(line)
                if data is None:
                    continue
                if data.strip() == DONE:
                    await _drain(lines)
                    break
                for event in assembler.feed(_parse_chunk(data)):
                    yield event
            yield Completed(assembler.result())
        finally:
            await response.aclose()

    async def _complete_once(self, body: dict[str, Any], model: str) -> ChatResult:
        response = await self._guard(self._http.post("chat/completions", json=body))
        if response.status_code >= 400:
            raise http_error(response, response.content, key_hint=self._key_hint(),
                             secret=self._api_key)
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ResponseFormatError(
                f"the server's answer is not JSON ({exc}); first bytes: {response.text[:200]!r}"
            ) from None
        return parse_completion(data, model=model)

    # -- helpers ------------------------------------------------------------------------

    def _body(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
        model: str, options: dict[str, Any], *, stream: bool,
    ) -> dict[str, Any]:
        clash = _RESERVED_OPTIONS & options.keys()
        if clash:
            raise TypeError(f"pass {sorted(clash)} as the method's own arguments, not options")
        body: dict[str, Any] = {"model": model, "messages": list(messages), **options}
        if tools:
            body["tools"] = list(tools)
        body["stream"] = stream
        if stream:
            body.setdefault("stream_options", {})
            body["stream_options"] = {**body["stream_options"], "include_usage": True}
        return body

    async def _guard(self, awaitable: Awaitable[T]) -> T:
        """Await with the client's timeout; map transport failures onto our errors."""
        try:
            async with asyncio.timeout(self.timeout):
                return await awaitable
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ProviderTimeout(
                f"no answer from {self.profile.base_url} within {self.timeout:g}s "
                f"({type(exc).__name__}); raise `timeout` or check the server"
            ) from None
        except httpx.TransportError as exc:
            hint = (" Is the server running and base_url right?"
                    if isinstance(exc, httpx.ConnectError) else "")
            raise ProviderConnectionError(
                f"connection to {self.profile.base_url} failed: {type(exc).__name__}: {exc}.{hint}"
            ) from None

    async def _backoff_or_raise(self, exc: ProviderError, attempt: int) -> None:
        policy = self.retry_policy
        if attempt >= policy.max_retries:
            raise exc
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        delay = policy.delay(attempt, retry_after=retry_after)
        logger.info(
            "%s: retry %d/%d in %.2fs after %s: %s", self.profile.name, attempt + 1,
            policy.max_retries, delay, type(exc).__name__, exc,
        )
        await self._sleep(delay)

    def _finish(self, result: ChatResult, model: str, started: float, attempt: int) -> None:
        result.latency_ms = (time.perf_counter() - started) * 1000.0
        result.retries = attempt
        prices = self.profile.spec(model).prices
        # Without reported usage the counters are zeros, not measurements: $0 would be a lie.
        if prices is not None and result.usage.reported:
            result.cost = prices.cost(result.usage)
            result.cache_savings = prices.cache_savings(result.usage)

    def _key_hint(self) -> str:
        env = self.profile.api_key_env
        where = f"set the {env} environment variable" if env else "pass api_key=..."
        state = "a key was sent" if self._api_key else "no key was sent"
        return (f"{where} (or pass api_key= / set it with %boonb config) to a valid key for "
                f"{self.profile.base_url}; {state}.")


def _check_tail(tail: str | None) -> None:
    """At the end of the body: accept a last ``[DONE]`` event, else the answer was cut off.

    An event with no blank line after it is unfinished (the SSE rule), so broken JSON in it
    means the connection was cut in the middle of a line, not that the server sent bad JSON.
    A ``[DONE]`` without its blank line is whole: some servers end the body right after it.
    """
    if tail is not None and tail.strip() == DONE:
        return
    where = ""
    if tail and not _is_json(tail):
        where = f" in the middle of a data: line ({len(tail)} characters arrived: {tail[:80]!r})"
    raise StreamError(
        f"the stream ended before its [DONE] marker{where}; the answer is incomplete "
        "(the server or a proxy cut the connection). Retry the call."
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _parse_chunk(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise StreamError(
            f"malformed JSON in a stream data: line ({exc.msg}): {data[:200]!r}"
        ) from None
    if not isinstance(chunk, dict):
        raise StreamError(f"a stream data: line is not a JSON object: {data[:200]!r}")
    return chunk


def _replay(result: ChatResult) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    if result.reasoning:
        events.append(ReasoningDelta(result.reasoning))
    if result.content:
        events.append(TextDelta(result.content))
    events.extend(ToolCallStarted(i, c.id, c.name) for i, c in enumerate(result.tool_calls))
    events.append(Completed(result))
    return events


async def _drain(lines: AsyncIterator[str], timeout: float = 1.0) -> None:
    """Read what follows ``[DONE]`` so the connection goes back to the pool.

    Otherwise httpx closes it; the answer is complete either way.
    """
    try:
        async with asyncio.timeout(timeout):
            async for _ in lines:
                pass
    except (TimeoutError, httpx.HTTPError):
        return
