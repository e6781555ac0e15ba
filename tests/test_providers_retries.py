"""Retries, timeouts and error mapping of ChatClient, driven through httpx.MockTransport."""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from boonb.providers import (
    AuthenticationError,
    ChatClient,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    StreamError,
    TextDelta,
    get_profile,
)

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
KEY = "sk-live-SECRET-9f8e7d6c5b4a"
MESSAGES = [{"role": "user", "content": "hi"}]
OK_BODY = {
    "id": "ok-1", "object": "chat.completion", "model": "deepseek-chat",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1,
              "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 3},
}
Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def ok() -> httpx.Response:
    return httpx.Response(200, json=OK_BODY)


def sse(*chunks: str, done: bool = True) -> bytes:
    text = "".join(f"data: {c}\n\n" for c in chunks)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(content: str, finish: str | None = None) -> str:
    return json.dumps({"id": "s-1", "model": "deepseek-chat", "choices": [
        {"index": 0, "delta": {"content": content}, "finish_reason": finish}]})


class Script:
    """Answers requests in order from a script; the last answer repeats."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(script, sleeps: Sleeps | None = None, **kwargs) -> ChatClient:
    return ChatClient(get_profile("deepseek"), api_key=KEY, transport=httpx.MockTransport(script),
                      sleep=sleeps or Sleeps(), **kwargs)


def run_complete(client: ChatClient, **kwargs):
    async def run():
        async with client:
            return await client.complete(MESSAGES, **kwargs)
    return asyncio.run(run())


def test_429_with_retry_after_waits_the_requested_seconds_then_succeeds():
    script = Script(httpx.Response(429, headers={"Retry-After": "2"},
                                   json={"error": {"message": "Rate limit reached"}}), ok())
    sleeps = Sleeps()
    result = run_complete(make_client(script, sleeps), stream=False)
    assert result.content == "done"
    assert result.retries == 1
    assert sleeps.delays == [2.0]
    assert len(script.requests) == 2


def test_retry_after_is_capped_at_sixty_seconds():
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}), ok())
    sleeps = Sleeps()
    run_complete(make_client(script, sleeps), stream=False)
    assert sleeps.delays == [60.0]


def test_500_twice_then_success_backs_off_exponentially():
    script = Script(httpx.Response(500), httpx.Response(502), ok())
    sleeps = Sleeps()
    result = run_complete(make_client(script, sleeps, backoff=0.5), stream=False)
    assert result.content == "done"
    assert sleeps.delays == [0.5, 1.0]


def test_5xx_beyond_max_retries_raises_server_error():
    script = Script(httpx.Response(503, json={"error": {"message": "Service busy"}}))
    sleeps = Sleeps()
    with pytest.raises(ServerError) as info:
        run_complete(make_client(script, sleeps, max_retries=3, backoff=0.1))
    assert info.value.status == 503
    assert "Service busy" in str(info.value)
    assert len(script.requests) == 4
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4])


def test_429_beyond_max_retries_raises_rate_limit_error():
    script = Script(httpx.Response(429, json={"error": {"message": "slow down"}}))
    with pytest.raises(RateLimitError, match="slow down"):
        run_complete(make_client(script, max_retries=1))


def test_connection_error_is_retried():
    script = Script(httpx.ConnectError("connection refused"), ok())
    sleeps = Sleeps()
    assert run_complete(make_client(script, sleeps), stream=False).content == "done"
    assert sleeps.delays == [0.5]


def test_connection_error_on_every_attempt_raises_provider_connection_error():
    script = Script(httpx.ConnectError("connection refused"))
    with pytest.raises(ProviderConnectionError, match="api.deepseek.com"):
        run_complete(make_client(script, max_retries=2))
    assert len(script.requests) == 3


def test_streaming_call_is_retried_while_nothing_was_yielded():
    script = Script(httpx.Response(500),
                    httpx.Response(200, content=sse(chunk("hi", "stop"))))
    sleeps = Sleeps()
    result = run_complete(make_client(script, sleeps))
    assert result.content == "hi"
    assert sleeps.delays == [0.5]


def test_401_raises_authentication_error_that_never_shows_the_key(caplog):
    # The server echoes the key back; it must be scrubbed from everything we produce.
    script = Script(httpx.Response(401, json={"error": {
        "message": f"Authentication Fails, Your api key: {KEY} is invalid",
        "type": "authentication_error"}}))
    client = make_client(script)
    caplog.set_level(logging.DEBUG, logger="boonb.providers")
    with pytest.raises(AuthenticationError) as info:
        run_complete(client)
    error = info.value
    assert error.status == 401
    assert "DEEPSEEK_API_KEY" in str(error)
    for text in (str(error), repr(error), error.message, repr(client), caplog.text):
        assert KEY not in text
        assert "Bearer" not in text
    assert len(script.requests) == 1  # not retried
    assert script.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_400_raises_http_error_with_the_server_message_and_is_not_retried():
    script = Script(httpx.Response(400, json={"error": {
        "message": "Invalid 'messages': empty array", "type": "invalid_request_error"}}))
    with pytest.raises(ProviderHTTPError) as info:
        run_complete(make_client(script))
    assert info.value.status == 400
    assert "Invalid 'messages': empty array" in str(info.value)
    assert type(info.value) is ProviderHTTPError
    assert len(script.requests) == 1


def test_retries_are_logged_at_info_without_secrets(caplog):
    script = Script(httpx.Response(500), ok())
    caplog.set_level(logging.INFO, logger="boonb.providers")
    run_complete(make_client(script), stream=False)
    records = [r for r in caplog.records if r.name == "boonb.providers"]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "retry 1/4" in records[0].getMessage()
    assert KEY not in caplog.text


def test_malformed_json_in_a_data_line_raises_stream_error():
    # The line is whole (a blank line follows it): the server sent bad JSON, not a cut.
    script = Script(httpx.Response(200, content=sse(chunk("a"), '{"id": "s-1", "choices": [')))
    with pytest.raises(StreamError, match="malformed JSON"):
        run_complete(make_client(script))
    assert len(script.requests) == 1


def test_stream_cut_off_before_done_raises_stream_error():
    script = Script(httpx.Response(200, content=sse(chunk("Hel"), chunk("lo"), done=False)))
    seen: list = []
    with pytest.raises(StreamError, match=r"\[DONE\]"):
        run_complete(make_client(script), on_event=seen.append)
    assert seen == [TextDelta("Hel"), TextDelta("lo")]


def test_connection_lost_mid_stream_raises_stream_error_without_retry():
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk("partial"), done=False)
        raise httpx.ReadError("connection reset by peer")

    script = Script(lambda request: httpx.Response(200, content=body()))
    sleeps = Sleeps()
    with pytest.raises(StreamError, match="after 1 event"):
        run_complete(make_client(script, sleeps))
    assert sleeps.delays == []
    assert len(script.requests) == 1


def test_a_stalled_stream_times_out_within_the_configured_timeout():
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk("first"), done=False)
        await asyncio.sleep(30)
        yield b""

    script = Script(lambda request: httpx.Response(200, content=body()))
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout, match="0.05s"):
        run_complete(make_client(script, timeout=0.05, max_retries=0))
    assert time.perf_counter() - started < 5


def test_no_response_headers_times_out_and_is_retried():
    async def never_answers(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return ok()

    class Stalling(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.calls = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if self.calls == 1:
                return await never_answers(request)
            return ok()

    sleeps = Sleeps()
    transport = Stalling()
    client = ChatClient(get_profile("deepseek"), api_key=KEY, transport=transport,
                        timeout=0.05, sleep=sleeps)
    assert run_complete(client, stream=False).content == "done"
    assert transport.calls == 2
    assert sleeps.delays == [0.5]


def test_retry_after_http_date_is_understood():
    from boonb.providers.retry import parse_retry_after

    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def rate_limited(fixture: str, **headers: str) -> httpx.Response:
    return httpx.Response(429, headers={"content-type": "application/json", **headers},
                          content=(FIXTURES / fixture).read_bytes())


def test_openrouter_429_shows_the_providers_message_from_metadata_raw():
    script = Script(rate_limited("openrouter_429_upstream_text.json"))
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as info:
        run_complete(make_client(script, sleeps, max_retries=1))

    message = str(info.value)
    assert message.startswith("HTTP 429: Provider returned error (Google AI Studio): ")
    assert "is temporarily rate-limited upstream. Please retry shortly" in message
    # "retry shortly" names no wait: the ordinary backoff applies.
    assert sleeps.delays == [0.5]


def test_openrouter_429_relaying_the_upstreams_json_shows_its_message_and_hint():
    script = Script(rate_limited("openrouter_429_upstream_json.json"), ok())
    sleeps = Sleeps()
    assert run_complete(make_client(script, sleeps), stream=False).content == "done"
    assert sleeps.delays == [pytest.approx(37.430875594)]

    with pytest.raises(RateLimitError) as info:
        run_complete(make_client(Script(rate_limited("openrouter_429_upstream_json.json")),
                                 max_retries=0))
    message = str(info.value)
    assert "Provider returned error (Google AI Studio): You exceeded your current quota" in message
    assert '"status"' not in message  # the upstream's text, not its JSON


@pytest.mark.parametrize(("fixture", "wait"), [
    ("openai_429_try_again.json", 0.579),
    ("groq_429_try_again.json", 1.5),
    ("azure_429_retry_after.json", 2.0),
])
def test_429_without_retry_after_header_waits_as_long_as_its_message_says(fixture, wait):
    script = Script(rate_limited(fixture), ok())
    sleeps = Sleeps()
    result = run_complete(make_client(script, sleeps), stream=False)
    assert result.content == "done"
    assert sleeps.delays == [pytest.approx(wait)]


def test_retry_after_header_wins_over_the_wait_in_the_message():
    script = Script(rate_limited("openai_429_try_again.json", **{"Retry-After": "3"}), ok())
    sleeps = Sleeps()
    run_complete(make_client(script, sleeps), stream=False)
    assert sleeps.delays == [3.0]


def test_wait_in_the_message_is_capped_at_the_max_wait():
    body = {"error": {"message": "Rate limit reached for requests per day (RPD). "
                                 "Please try again in 7m12.48s.", "code": "rate_limit_exceeded"}}
    script = Script(httpx.Response(429, json=body), ok())
    sleeps = Sleeps()
    run_complete(make_client(script, sleeps), stream=False)
    assert sleeps.delays == [60.0]


@pytest.mark.parametrize(("text", "seconds"), [
    ("Please try again in 579ms.", 0.579),
    ("Please try again in 1.5s", 1.5),
    ("retry after 2 seconds", 2.0),
    ("Please try again in 1m30s.", 90.0),
    ("Please retry in 37.4s.", 37.4),
    ("Try again in 1 minute", 60.0),
    ("Please try again later.", None),
    ("Please retry shortly", None),
    ("retry in a moment (not 5 ms from now)", None),
    ("", None),
])
def test_retry_hint_is_read_from_the_message_text(text, seconds):
    from boonb.providers.retry import parse_retry_hint

    assert parse_retry_hint(text) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize("raw", [None, 42, "", "   ", {"nested": True}])
def test_odd_metadata_raw_leaves_the_message_alone(raw):
    body = {"error": {"message": "Provider returned error", "code": 429,
                      "metadata": {"raw": raw}}}
    script = Script(httpx.Response(429, json=body))
    with pytest.raises(RateLimitError) as info:
        run_complete(make_client(script, max_retries=0))
    assert str(info.value) == "HTTP 429: Provider returned error"
