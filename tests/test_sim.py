"""Behaviour of the simulated chat-completions server over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boonb.sim import Rule, SimServer, count_prompt_tokens, count_tokens, load_rules


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(client: httpx.Client, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/chat/completions", json={"model": "deepseek-chat", "messages": messages, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()


def stream_events(
    client: httpx.Client, messages: list[dict[str, Any]], **extra: Any
) -> list[dict[str, Any] | str]:
    """All SSE payloads of a streamed chat call: parsed chunks, and the raw "[DONE]"."""
    body = {"model": "deepseek-chat", "messages": messages, "stream": True, **extra}
    events: list[dict[str, Any] | str] = []
    with client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def chunks_of(events: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    return [event for event in events if isinstance(event, dict)]


def streamed_text(events: list[dict[str, Any] | str], key: str = "content") -> str:
    return "".join(
        chunk["choices"][0]["delta"].get(key) or ""
        for chunk in chunks_of(events)
        if chunk["choices"]
    )


def assembled_tool_calls(events: list[dict[str, Any] | str]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks_of(events):
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or ():
                call = calls.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.get("id") or ""
                call["name"] += delta.get("function", {}).get("name") or ""
                call["arguments"] += delta.get("function", {}).get("arguments") or ""
    return calls


# -- plain text ------------------------------------------------------------------------------


def test_non_streaming_default_reply_quotes_user_and_says_simulator(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/chat/completions",
        json={"model": "deepseek-chat", "messages": [user("What is the capital of France?")]},
    )
    assert response.headers["x-boonb-simulator"] == "1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim:deepseek-chat"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"].startswith("[simulator]")
    assert "capital of France" in message["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "reasoning_content" not in message


def test_default_reply_is_deterministic(client: httpx.Client) -> None:
    first = chat(client, [user("same question")])
    second = chat(client, [user("same question")])
    assert first["choices"] == second["choices"]
    assert first["id"] == second["id"]


def test_model_name_already_containing_sim_is_kept(client: httpx.Client) -> None:
    assert chat(client, [user("hi")], model="sim-chat")["model"] == "sim-chat"


def test_chat_path_without_v1_prefix_also_answers(sim: SimServer) -> None:
    root = sim.base_url.removesuffix("/v1")
    response = httpx.post(f"{root}/chat/completions", json={"messages": [user("hi")]})
    assert response.status_code == 200
    assert response.json()["model"] == "sim-chat"


def test_streaming_text_arrives_in_several_deltas_then_done(client: httpx.Client) -> None:
    events = stream_events(client, [user("tell me a story about a cat")])
    assert events[-1] == "[DONE]"
    chunks = chunks_of(events)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    content_deltas = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_deltas) > 3
    text = streamed_text(events)
    assert (
        text
        == chat(client, [user("tell me a story about a cat")])["choices"][0]["message"]["content"]
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # No usage chunk unless asked for.
    assert all(chunk["choices"] for chunk in chunks)


def test_stream_usage_chunk_comes_last_when_include_usage(client: httpx.Client) -> None:
    events = stream_events(client, [user("hello")], stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert isinstance(usage_chunk, dict)
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == count_tokens(streamed_text(events))


# -- rules and tool calls --------------------------------------------------------------------


def test_rule_reply_replaces_default(sim: SimServer, client: httpx.Client) -> None:
    sim.add_rule(Rule(r"capital of (\w+)", reply="Paris."))
    body = chat(client, [user("What is the CAPITAL OF France?")])
    assert body["choices"][0]["message"]["content"] == "Paris."


def test_rule_single_tool_call_non_streaming(sim: SimServer, client: httpx.Client) -> None:
    sim.add_rule(
        Rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    )
    body = chat(client, [user("What's the weather in Oslo?")])
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_rule_multiple_tool_calls_streamed_with_distinct_indexes(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_rule(
        Rule(
            "compare",
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Oslo"}},
                {"name": "get_weather", "arguments": {"city": "Lima"}},
            ],
        )
    )
    events = stream_events(client, [user("compare Oslo and Lima")])
    calls = assembled_tool_calls(events)
    assert sorted(calls) == [0, 1]
    assert calls[0]["id"] != calls[1]["id"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [
        {"city": "Oslo"},
        {"city": "Lima"},
    ]
    # The first delta of each call carries id, type and name with empty arguments.
    headers = [
        delta
        for chunk in chunks_of(events)
        if chunk["choices"]
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or ()
        if "id" in delta
    ]
    assert [h["function"]["arguments"] for h in headers] == ["", ""]
    assert all(h["type"] == "function" for h in headers)
    finish = [c["choices"][0]["finish_reason"] for c in chunks_of(events) if c["choices"]]
    assert finish[-1] == "tool_calls"
    # Streamed and non-streamed calls agree (ids are deterministic).
    message = chat(client, [user("compare Oslo and Lima")])["choices"][0]["message"]
    assert [c["id"] for c in message["tool_calls"]] == [calls[0]["id"], calls[1]["id"]]


def test_rule_times_limits_how_often_it_fires(sim: SimServer, client: httpx.Client) -> None:
    sim.add_rule(Rule("ping", reply="pong", times=1))
    assert chat(client, [user("ping")])["choices"][0]["message"]["content"] == "pong"
    assert chat(client, [user("ping")])["choices"][0]["message"]["content"].startswith(
        "[simulator]"
    )


def test_user_rule_ignores_tool_messages_and_tool_rule_chains(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_rule(
        Rule("README", tool_calls=[{"name": "read_file", "arguments": {"path": "README"}}])
    )
    sim.add_rule(
        Rule("boonb", role="tool", tool_calls=[{"name": "grep", "arguments": {"q": "sim"}}])
    )
    messages: list[dict[str, Any]] = [user("Open the README please")]
    first = chat(client, messages)["choices"][0]["message"]
    assert first["tool_calls"][0]["function"]["name"] == "read_file"

    messages += [
        first,
        {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "# boonb README"},
    ]
    second = chat(client, messages)["choices"][0]["message"]
    # The "README" user rule must not fire on a tool result; the tool rule chains to grep.
    assert second["tool_calls"][0]["function"]["name"] == "grep"

    messages += [
        second,
        {"role": "tool", "tool_call_id": second["tool_calls"][0]["id"], "content": "nothing"},
    ]
    third = chat(client, messages)["choices"][0]
    assert third["finish_reason"] == "stop"
    assert third["message"]["content"] == "[simulator] Tool results: grep → nothing"


def test_default_reply_after_tool_results_summarises_each_result(client: httpx.Client) -> None:
    long_output = "line " * 40
    messages = [
        user("look around"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": "{}"},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "list_dir", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": long_output},
        {"role": "tool", "tool_call_id": "b", "content": "x.py\ny.py"},
    ]
    body = chat(client, messages)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    content = choice["message"]["content"]
    assert content.startswith("[simulator] Tool results: read_file → line line")
    assert "…" in content  # the long result is cut short
    assert content.endswith("list_dir → x.py y.py")
    assert "tool_calls" not in choice["message"]


def test_rules_load_from_json_file(tmp_path: Any) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            [
                {"pattern": "hi", "reply": "hello"},
                {"pattern": "x", "role": "tool", "tool_calls": [{"name": "t", "arguments": {}}]},
            ]
        )
    )
    rules = load_rules(path)
    assert rules[0] == Rule("hi", reply="hello")
    assert rules[1].role == "tool"
    with SimServer(rules=rules) as server, httpx.Client(base_url=server.base_url) as http:
        assert chat(http, [user("hi")])["choices"][0]["message"]["content"] == "hello"


def test_rule_rejects_bad_pattern_and_unknown_keys(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="regular expression"):
        Rule("(unclosed")
    path = tmp_path / "rules.json"
    path.write_text(json.dumps([{"pattern": "a", "replay": "typo"}]))
    with pytest.raises(ValueError, match="replay"):
        load_rules(path)


# -- reasoning and usage ---------------------------------------------------------------------


def test_reasoner_model_returns_reasoning_inside_completion_tokens(client: httpx.Client) -> None:
    body = chat(client, [user("why is the sky blue?")], model="deepseek-reasoner")
    message = body["choices"][0]["message"]
    assert message["reasoning_content"].startswith("[simulator]")
    usage = body["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning == count_tokens(message["reasoning_content"])
    assert 0 < reasoning < usage["completion_tokens"]
    assert usage["completion_tokens"] == reasoning + count_tokens(message["content"])


def test_streamed_reasoning_precedes_content(client: httpx.Client) -> None:
    events = stream_events(client, [user("think")], model="sim-reasoner")
    kinds = [
        "reasoning" if c["choices"][0]["delta"].get("reasoning_content") else "content"
        for c in chunks_of(events)
        if c["choices"]
        and (
            c["choices"][0]["delta"].get("reasoning_content")
            or c["choices"][0]["delta"].get("content")
        )
    ]
    assert kinds[0] == "reasoning"
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")
    assert streamed_text(events, "reasoning_content").startswith("[simulator]")


def test_rule_reasoning_on_chat_model(sim: SimServer, client: httpx.Client) -> None:
    sim.add_rule(Rule("plan", reply="done", reasoning="step one then step two"))
    usage = chat(client, [user("plan it")])["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert usage["completion_tokens"] == 6


def test_deepseek_usage_counts_prompt_with_tools(client: httpx.Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]
    messages = [{"role": "system", "content": "Be brief."}, user("hello there")]
    usage = chat(client, messages, tools=tools)["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(messages, tools)
    assert usage["prompt_tokens"] > count_prompt_tokens(messages)
    hit, miss = usage["prompt_cache_hit_tokens"], usage["prompt_cache_miss_tokens"]
    assert hit + miss == usage["prompt_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "completion_tokens_details" not in usage  # no reasoning, DeepSeek omits it
    assert "prompt_tokens_details" not in usage


def test_repeated_prefix_hits_cache_and_fresh_prompt_does_not() -> None:
    with SimServer(cache_block=8) as server, httpx.Client(base_url=server.base_url) as http:
        history = [
            {"role": "system", "content": "You are a careful assistant who answers briefly."},
            user("Summarise the plot of Hamlet in two sentences, please."),
        ]
        first = chat(http, history)
        assert first["usage"]["prompt_cache_hit_tokens"] == 0

        longer = [*history, first["choices"][0]["message"], user("And Macbeth?")]
        usage = chat(http, longer)["usage"]
        shared = count_prompt_tokens(history)
        hit = usage["prompt_cache_hit_tokens"]
        assert hit == shared - shared % 8  # the longest block-aligned shared prefix
        assert hit + usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]

        fresh = chat(http, [user("A completely different conversation about whales and seas")])
        assert fresh["usage"]["prompt_cache_hit_tokens"] == 0

        server.reset_cache()
        assert chat(http, history)["usage"]["prompt_cache_hit_tokens"] == 0


def test_openai_usage_style_uses_details_fields() -> None:
    with (
        SimServer(usage_style="openai", cache_block=4) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        messages = [user("one two three four five six seven eight nine ten")]
        chat(http, messages)
        usage = chat(http, messages, model="deepseek-reasoner")["usage"]
        assert usage["prompt_tokens_details"]["cached_tokens"] > 0
        assert usage["prompt_tokens_details"]["cached_tokens"] <= usage["prompt_tokens"]
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        assert 0 < reasoning <= usage["completion_tokens"]
        assert "prompt_cache_hit_tokens" not in usage


# -- validation ------------------------------------------------------------------------------


def test_vision_off_rejects_images_with_400(sim: SimServer, client: httpx.Client) -> None:
    image_message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    assert "1 image" in chat(client, [image_message])["choices"][0]["message"]["content"]
    sim.vision = False
    response = client.post(
        "/chat/completions", json={"model": "deepseek-chat", "messages": [image_message]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "image" in error["message"] and "vision" in error["message"]
    # Text still works with vision off.
    assert chat(client, [user("plain text")])["choices"][0]["message"]["content"]


def test_bad_json_and_missing_messages_are_400(client: httpx.Client) -> None:
    bad = client.post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    missing = client.post("/chat/completions", json={"model": "deepseek-chat"})
    assert missing.status_code == 400
    assert "messages" in missing.json()["error"]["message"]
    # The connection survives errors (keep-alive) and still answers.
    assert chat(client, [user("still there?")])["choices"]


def test_models_endpoint_lists_simulated_models(client: httpx.Client) -> None:
    response = client.get("/models")
    assert response.headers["x-boonb-simulator"] == "1"
    ids = [model["id"] for model in response.json()["data"]]
    assert {"sim-chat", "deepseek-chat", "deepseek-reasoner"} <= set(ids)


def test_requests_records_bodies(sim: SimServer, client: httpx.Client) -> None:
    chat(client, [user("first")])
    chat(client, [user("second")], temperature=0.5)
    recorded = sim.requests
    assert [r["messages"][0]["content"] for r in recorded] == ["first", "second"]
    assert recorded[1]["temperature"] == 0.5
    recorded.clear()
    assert len(sim.requests) == 2


def test_base_url_requires_running_server() -> None:
    server = SimServer()
    with pytest.raises(RuntimeError, match="start"):
        _ = server.base_url
    url = server.start()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    server.stop()
    server.stop()  # idempotent
