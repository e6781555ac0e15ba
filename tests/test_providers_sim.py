"""ChatClient end to end against boonb's simulator over real loopback HTTP."""

import asyncio
from collections.abc import Iterator

import pytest

from boonb.providers import (
    ChatClient,
    Completed,
    ServerError,
    StreamError,
    TextDelta,
    ToolCallStarted,
    get_profile,
)
from boonb.sim import Fault, Rule, SimServer

SYSTEM = {"role": "system", "content": "You are a careful data analyst. " * 40}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


def client_for(sim: SimServer, **kwargs) -> ChatClient:
    profile = get_profile("sim").with_overrides(base_url=sim.base_url)
    return ChatClient(profile, **{"backoff": 0.01, **kwargs})


def test_text_stream_from_the_simulator(sim):
    async def run() -> list:
        async with client_for(sim) as client:
            messages = [SYSTEM, {"role": "user", "content": "hello there"}]
            return [event async for event in client.stream(messages)]

    events = asyncio.run(run())
    result = events[-1].result
    assert isinstance(events[-1], Completed)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == result.content
    assert result.content.startswith("[simulator]")
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.cost is not None and result.cost > 0


def test_parallel_tool_calls_from_a_rule(sim):
    sim.add_rule(Rule("weather", tool_calls=[
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Tokyo"}},
    ]))
    seen: list = []

    async def run():
        async with client_for(sim) as client:
            return await client.complete(
                [{"role": "user", "content": "what's the weather?"}], tools=TOOLS,
                on_event=seen.append)

    result = asyncio.run(run())
    assert result.finish_reason == "tool_calls"
    assert [c.parsed_arguments() for c in result.tool_calls] == [
        {"city": "Paris"}, {"city": "Tokyo"}]
    assert [e.index for e in seen if isinstance(e, ToolCallStarted)] == [0, 1]


def test_repeated_prefix_hits_the_cache_and_saves_money(sim):
    async def run():
        async with client_for(sim) as client:
            first = await client.complete([SYSTEM, {"role": "user", "content": "one"}])
            second = await client.complete([SYSTEM, {"role": "user", "content": "two"}])
            return first, second

    first, second = asyncio.run(run())
    assert first.usage.cache_tokens == 0
    assert second.usage.cache_tokens > 0
    assert second.usage.cache_tokens <= second.usage.input_tokens
    assert second.cache_savings is not None and second.cache_savings > 0


def test_rate_limit_fault_is_retried_after_retry_after(sim):
    sim.inject(Fault.rate_limit(retry_after=0.05))
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(delay)

    async def run():
        async with client_for(sim, sleep=sleep) as client:
            return await client.complete([{"role": "user", "content": "hi"}])

    result = asyncio.run(run())
    assert result.retries == 1
    assert delays == [0.05]
    assert result.content.startswith("[simulator]")


def test_persistent_server_errors_raise_server_error(sim):
    sim.inject(Fault.server_error(503), times=10)

    async def run():
        async with client_for(sim, max_retries=2) as client:
            return await client.complete([{"role": "user", "content": "hi"}])

    with pytest.raises(ServerError) as info:
        asyncio.run(run())
    assert info.value.status == 503


@pytest.mark.parametrize("fault", [Fault.broken_stream(after_chunks=2), Fault.malformed_stream()])
def test_broken_and_malformed_streams_raise_stream_error(sim, fault):
    sim.inject(fault)

    async def run():
        async with client_for(sim) as client:
            return await client.complete([{"role": "user", "content": "tell me a story"}])

    with pytest.raises(StreamError):
        asyncio.run(run())


def test_server_timeout_is_retried_within_the_client_timeout(sim):
    sim.inject(Fault.timeout(seconds=1.0))

    async def run():
        async with client_for(sim, timeout=0.2) as client:
            return await client.complete([{"role": "user", "content": "hi"}])

    assert asyncio.run(run()).retries == 1
