"""Real clients against the simulator: the openai SDK, concurrency, and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from boonb.sim import Fault, Rule, SimServer


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sdk(sim: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client:
        yield client


def test_openai_sdk_non_streaming_call(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "Hi from the SDK"}]
    )
    assert completion.model == "sim:deepseek-chat"
    content = completion.choices[0].message.content
    assert content is not None and content.startswith("[simulator]")
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


def test_openai_sdk_streaming_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="deepseek-reasoner",
        messages=[{"role": "user", "content": "Stream to me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    usage = None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text.startswith("[simulator]")
    assert usage is not None
    assert usage.completion_tokens > 0
    extra: dict[str, Any] = usage.model_extra or {}
    assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == (
        usage.prompt_tokens
    )
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens


def test_openai_sdk_tool_call_round_trip(sim: SimServer, sdk: openai.OpenAI) -> None:
    sim.add_rule(
        Rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    )
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Rome?"}]
    first = sdk.chat.completions.create(model="deepseek-chat", messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24°C"},
    ]
    second = sdk.chat.completions.create(model="deepseek-chat", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert (
        second.choices[0].message.content == "[simulator] Tool results: get_weather → Sunny, 24°C"
    )
    assert sim.requests[1]["messages"][-1]["tool_call_id"] == call.id


def test_openai_sdk_retries_429_honouring_retry_after(sim: SimServer) -> None:
    sim.inject(Fault.rate_limit(retry_after=0.05))
    with openai.OpenAI(base_url=sim.base_url, api_key="sim", max_retries=2) as client:
        completion = client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "retry me"}]
        )
    assert completion.choices[0].message.content
    assert len(sim.requests) == 2


def test_fifty_concurrent_streams_all_complete(sim: SimServer) -> None:
    sim.latency = 0.05  # keeps all streams open at the same time

    async def one(client: httpx.AsyncClient, index: int) -> str:
        body = {
            "model": "deepseek-chat",
            "stream": True,
            "messages": [{"role": "user", "content": f"request number {index}"}],
        }
        text = ""
        async with client.stream("POST", "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    text += delta.get("content") or ""
                elif line == "data: [DONE]":
                    return text
        raise AssertionError(f"stream {index} ended without [DONE]")

    async def run_all() -> list[str]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=sim.base_url, limits=limits, timeout=20) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    texts = asyncio.run(run_all())
    assert len(texts) == 50
    assert all(f"request number {i}" in text for i, text in enumerate(texts))


def test_module_runs_as_standalone_server(tmp_path: Any) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"pattern": "ping", "reply": "pong"}]))
    command = [sys.executable, "-m", "boonb.sim", "--port", "0", "--rules", str(rules)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "boonb simulator" in banner
            base_url = banner.split()[-1]
            response = httpx.post(
                f"{base_url}/chat/completions",
                json={"model": "x", "messages": [{"role": "user", "content": "ping"}]},
                timeout=10,
            )
            assert response.headers["x-boonb-simulator"] == "1"
            assert response.json()["choices"][0]["message"]["content"] == "pong"
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert process.returncode == 0
