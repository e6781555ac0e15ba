"""ChatClient against recorded DeepSeek/OpenAI bodies served by httpx.MockTransport."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from boonb.providers import (
    Capabilities,
    CapabilityError,
    ChatClient,
    Completed,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolArgumentsError,
    ToolCall,
    ToolCallStarted,
    Usage,
    get_profile,
)
from boonb.providers.profiles import Prices

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
KEY = "sk-test-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hi"}]


class Server:
    """A MockTransport handler that records requests and answers with one fixed body."""

    def __init__(self, body: bytes, *, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.requests: list[httpx.Request] = []

    @classmethod
    def fixture(cls, name: str) -> "Server":
        kind = "text/event-stream" if name.endswith(".sse") else "application/json"
        return cls((FIXTURES / name).read_bytes(), content_type=kind)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"content-type": self.content_type}, content=self.body)

    def sent(self, index: int = 0) -> dict:
        return json.loads(self.requests[index].content)


def client_for(profile_name: str, server: Server, **kwargs) -> ChatClient:
    return ChatClient(get_profile(profile_name), api_key=KEY,
                      transport=httpx.MockTransport(server), **kwargs)


def collect(client: ChatClient, **kwargs) -> list:
    async def run() -> list:
        async with client:
            return [event async for event in client.stream(MESSAGES, **kwargs)]
    return asyncio.run(run())


def complete(client: ChatClient, **kwargs):
    async def run():
        async with client:
            return await client.complete(MESSAGES, **kwargs)
    return asyncio.run(run())


def test_deepseek_completion_maps_cache_hit_and_miss_tokens():
    server = Server.fixture("deepseek_chat_completion.json")
    result = complete(client_for("deepseek", server), stream=False)

    assert result.content == "The capital of the United States is Washington, D.C."
    assert result.reasoning is None
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert result.model == "deepseek-chat"
    assert result.request_id == "930c60df-bf64-41c9-a88e-3ec75f81e00e"
    assert result.usage == Usage(input_tokens=1562, output_tokens=13, cache_tokens=1536)
    assert result.usage.cache_miss_tokens == 26
    assert result.cost == pytest.approx((26 * 0.28 + 1536 * 0.028 + 13 * 0.42) / 1e6)
    assert result.cache_savings == pytest.approx(1536 * (0.28 - 0.028) / 1e6)
    assert result.latency_ms > 0

    request = server.requests[0]
    assert str(request.url) == "https://api.deepseek.com/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert server.sent() == {"model": "deepseek-chat", "messages": MESSAGES, "stream": False}


def test_deepseek_reasoner_completion_returns_reasoning_content():
    server = Server.fixture("deepseek_reasoner_completion.json")
    result = complete(client_for("deepseek", server), model="deepseek-reasoner", stream=False,
                      max_tokens=512)

    assert result.content == "9.8 is greater than 9.11."
    assert result.reasoning is not None and result.reasoning.startswith("Compare 9.11 and 9.8")
    assert result.usage == Usage(input_tokens=18, output_tokens=121, cache_tokens=0,
                                 reasoning_tokens=109)
    assert result.cost == pytest.approx((18 * 0.28 + 121 * 0.42) / 1e6)
    assert server.sent()["model"] == "deepseek-reasoner"
    assert server.sent()["max_tokens"] == 512


def test_deepseek_stream_yields_text_deltas_then_completed_with_usage():
    server = Server.fixture("deepseek_chat_stream.sse")
    events = collect(client_for("deepseek", server))

    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Hello", "!", " How", " can I help", " you today?"]
    assert isinstance(events[-1], Completed)
    result = events[-1].result
    assert result.content == "Hello! How can I help you today?"
    assert result.finish_reason == "stop"
    assert result.request_id == "a5c2e7f0-1b3d-4c6e-8f9a-0b1c2d3e4f50"
    assert result.usage == Usage(input_tokens=73, output_tokens=9, cache_tokens=64)
    assert result.cost == pytest.approx((9 * 0.28 + 64 * 0.028 + 9 * 0.42) / 1e6)

    sent = server.sent()
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_deepseek_reasoner_stream_yields_reasoning_before_text():
    server = Server.fixture("deepseek_reasoner_stream.sse")
    events = collect(client_for("deepseek", server), model="deepseek-reasoner")

    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ReasoningDelta", "ReasoningDelta", "TextDelta", "TextDelta", "Completed"]
    result = events[-1].result
    assert result.reasoning == "0.8 = 0.80 > 0.11."
    assert result.content == "9.8 is greater."
    assert result.usage == Usage(input_tokens=18, output_tokens=40, reasoning_tokens=35)


def test_openai_completion_maps_cached_and_reasoning_tokens():
    server = Server.fixture("openai_chat_completion.json")
    result = complete(client_for("openai", server), model="o4-mini", stream=False)

    assert result.content == 'There are 3 r\'s in "strawberry".'
    assert result.model == "o4-mini-2025-04-16"
    assert result.request_id == "chatcmpl-BxK2mQ7rT9vW3yZ5aC8eG1iL4nP6"
    assert result.usage == Usage(input_tokens=2006, output_tokens=300, cache_tokens=1920,
                                 reasoning_tokens=256)
    assert result.usage.cache_miss_tokens == 86
    assert result.usage.tokens_used == 2306
    assert result.cost == pytest.approx((86 * 1.10 + 1920 * 0.275 + 300 * 4.40) / 1e6)
    assert str(server.requests[0].url) == "https://api.openai.com/v1/chat/completions"


def test_openai_stream_assembles_two_parallel_tool_calls_from_fragments():
    server = Server.fixture("openai_stream_tool_calls.sse")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    events = collect(client_for("openai", server), tools=tools)

    assert [e for e in events if isinstance(e, ToolCallStarted)] == [
        ToolCallStarted(0, "call_6Vq3fJ1xKp0aLm2bN4cR8sTd", "get_weather"),
        ToolCallStarted(1, "call_9Wr4gK2yLq1bMn3cO5dS7uVe", "get_weather"),
    ]
    result = events[-1].result
    assert result.tool_calls == [
        ToolCall("call_6Vq3fJ1xKp0aLm2bN4cR8sTd", "get_weather", '{"location": "Paris, France"}'),
        ToolCall("call_9Wr4gK2yLq1bMn3cO5dS7uVe", "get_weather", '{"location": "Tokyo, Japan"}'),
    ]
    assert [c.parsed_arguments() for c in result.tool_calls] == [
        {"location": "Paris, France"}, {"location": "Tokyo, Japan"}]
    assert result.content == ""
    assert result.finish_reason == "tool_calls"
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.usage == Usage(input_tokens=1318, output_tokens=46, cache_tokens=1152)
    # priced as the requested alias although the server answered with a snapshot name
    assert result.cost == pytest.approx((166 * 0.15 + 1152 * 0.075 + 46 * 0.60) / 1e6)
    assert result.cache_savings == pytest.approx(1152 * 0.075 / 1e6)
    assert server.sent()["tools"] == tools


def test_complete_streams_events_to_on_event_and_returns_the_result():
    server = Server.fixture("deepseek_chat_stream.sse")
    seen: list = []
    result = complete(client_for("deepseek", server), on_event=seen.append)

    assert result.content == "Hello! How can I help you today?"
    assert isinstance(seen[-1], Completed) and seen[-1].result is result
    assert sum(isinstance(e, TextDelta) for e in seen) == 5


def test_non_streaming_complete_replays_the_same_event_kinds():
    server = Server.fixture("deepseek_reasoner_completion.json")
    seen: list = []
    complete(client_for("deepseek", server), stream=False, on_event=seen.append)
    assert [type(e) for e in seen] == [ReasoningDelta, TextDelta, Completed]


def test_local_server_reasoning_field_is_read_as_reasoning():
    lines = [
        {"id": "x", "model": "qwen3", "choices": [{"index": 0, "delta": {"reasoning": "hm"}}]},
        {"id": "x", "model": "qwen3", "choices": [{"index": 0, "delta": {"content": "ok"},
                                                   "finish_reason": "stop"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in lines) + "data: [DONE]\n\n"
    server = Server(body.encode(), content_type="text/event-stream")
    client = ChatClient(get_profile("local"), transport=httpx.MockTransport(server))
    events = collect(client, model="qwen3")

    result = events[-1].result
    assert (result.reasoning, result.content) == ("hm", "ok")
    assert result.usage == Usage(reported=False)
    assert result.cost is None and result.cache_savings is None
    assert "authorization" not in server.requests[0].headers


def test_image_to_text_only_model_fails_before_anything_is_sent():
    server = Server.fixture("deepseek_chat_completion.json")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]

    async def run() -> None:
        async with client_for("deepseek", server) as client:
            await client.complete(messages)

    with pytest.raises(CapabilityError) as info:
        asyncio.run(run())
    assert server.requests == []
    assert "'deepseek-chat'" in str(info.value)
    assert "cannot read images" in str(info.value)


def test_tools_to_model_without_tools_fail_before_anything_is_sent():
    server = Server.fixture("deepseek_chat_completion.json")
    profile = get_profile("local").with_overrides(
        capabilities={"tiny": Capabilities(tools=False, vision=False, reasoning=False)})
    client = ChatClient(profile, model="tiny", transport=httpx.MockTransport(server))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]

    async def run() -> None:
        async with client:
            async for _ in client.stream(MESSAGES, tools=tools):
                pass

    with pytest.raises(CapabilityError, match="does not support tool calls"):
        asyncio.run(run())
    assert server.requests == []


def test_image_goes_through_to_a_vision_model():
    server = Server.fixture("openai_chat_completion.json")
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]

    async def run() -> None:
        async with client_for("openai", server, model="gpt-4o") as client:
            await client.complete(messages, stream=False)

    asyncio.run(run())
    assert len(server.requests) == 1


def test_parsed_arguments_raises_a_clear_error_on_invalid_json():
    call = ToolCall(id="call_1", name="get_weather", arguments='{"location": "Par')
    with pytest.raises(ToolArgumentsError, match="get_weather.*not valid JSON"):
        call.parsed_arguments()
    assert ToolCall("call_2", "noop", "").parsed_arguments() == {}
    with pytest.raises(ToolArgumentsError, match="not an object"):
        ToolCall("call_3", "f", "[1, 2]").parsed_arguments()


def test_error_object_inside_a_stream_raises_stream_error():
    body = b'data: {"error": {"message": "model overloaded", "type": "server_error"}}\n\n'
    server = Server(body, content_type="text/event-stream")
    with pytest.raises(StreamError, match="model overloaded"):
        collect(client_for("openai", server))


def test_stream_option_is_refused_as_a_free_option():
    server = Server.fixture("deepseek_chat_stream.sse")
    with pytest.raises(TypeError, match="stream"):
        collect(client_for("deepseek", server), stream=False)
    assert server.requests == []


def gemini_client(server: Server) -> ChatClient:
    # No built-in Gemini profile: point the local one at Gemini's OpenAI-compatible endpoint.
    profile = get_profile("local").with_overrides(
        base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
        prices={"gemini-2.5-flash": Prices(input_per_mtok=0.30, cache_hit_input_per_mtok=0.075,
                                           output_per_mtok=2.50)})
    return ChatClient(profile, model="gemini-2.5-flash", api_key=KEY,
                      transport=httpx.MockTransport(server))


def test_hidden_reasoning_counted_only_in_total_tokens_is_output_and_reasoning():
    server = Server.fixture("gemini_thinking_completion.json")
    result = complete(gemini_client(server), stream=False)

    # prompt 20 + completion 424 = 444, but total_tokens is 1016: 572 thinking tokens.
    assert result.usage == Usage(input_tokens=20, output_tokens=996, reasoning_tokens=572)
    assert result.usage.tokens_used == 1016
    assert result.cost == pytest.approx((20 * 0.30 + 996 * 2.50) / 1e6)


def test_hidden_reasoning_in_a_streamed_answer_is_counted_too():
    server = Server.fixture("gemini_thinking_stream.sse")
    result = collect(gemini_client(server))[-1].result

    assert result.content == "15% of 240 is 36."
    assert result.usage == Usage(input_tokens=20, output_tokens=592, reasoning_tokens=583)
    assert result.usage.tokens_used == 612


@pytest.mark.parametrize("fixture", [
    "openai_stream_without_usage.sse", "openai_completion_without_usage.json"])
def test_answer_without_usage_is_marked_unreported_and_its_cost_unknown(fixture):
    server = Server.fixture(fixture)
    stream = fixture.endswith(".sse")
    result = complete(client_for("openai", server, model="gpt-4o-mini"), stream=stream)

    assert result.content == "Hello there."
    assert result.usage.reported is False
    assert result.usage.tokens_used == 0
    # gpt-4o-mini has prices, yet nothing was measured: unknown, not $0.
    assert result.cost is None
    assert result.cache_savings is None


def test_answer_with_usage_is_marked_reported():
    result = complete(client_for("deepseek", Server.fixture("deepseek_chat_stream.sse")))
    assert result.usage.reported is True
    assert result.cost is not None


def test_stream_cut_in_the_middle_of_a_data_line_says_the_answer_was_cut_off():
    server = Server.fixture("openai_stream_cut_mid_line.sse")
    seen: list = []
    with pytest.raises(StreamError) as info:
        complete(client_for("openai", server), on_event=seen.append)

    message = str(info.value)
    assert "malformed" not in message
    assert "[DONE]" in message and "cut" in message
    assert "in the middle of a data: line" in message
    assert "Retry the call" in message
    assert seen == [TextDelta("The answer"), TextDelta(" is forty")]


def test_done_marker_without_a_final_blank_line_ends_the_stream_normally():
    body = (FIXTURES / "deepseek_chat_stream.sse").read_bytes().rstrip()
    assert body.endswith(b"data: [DONE]")
    server = Server(body, content_type="text/event-stream")
    result = complete(client_for("deepseek", server))
    assert result.content == "Hello! How can I help you today?"


def test_image_capability_error_shows_an_override_that_can_be_pasted():
    server = Server.fixture("deepseek_chat_completion.json")
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]

    async def run() -> None:
        async with client_for("deepseek", server) as client:
            await client.complete(messages)

    with pytest.raises(CapabilityError) as info:
        asyncio.run(run())
    message = str(info.value)
    assert message.endswith(
        "profile.with_overrides(capabilities={'deepseek-chat': "
        "Capabilities(vision=True, ...)}).")
    assert message.count("{") == message.count("}")
    assert message.count("(") == message.count(")")
