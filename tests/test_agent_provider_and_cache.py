from __future__ import annotations

import pytest
from pydantic import SecretStr

from boonb.agent.cache import CacheTracker, PromptSegments
from boonb.agent.provider import choose_provider
from boonb.config import Settings


def test_auto_provider_prefers_deepseek_then_openai_then_the_simulator() -> None:
    assert choose_provider(Settings()).name == "sim"
    assert choose_provider(Settings(openai_api_key=SecretStr("sk-o"))).name == "openai"
    both = Settings(openai_api_key=SecretStr("sk-o"), deepseek_api_key=SecretStr("sk-d"))
    choice = choose_provider(both)
    assert (choice.name, choice.api_key, choice.model) == ("deepseek", "sk-d", "deepseek-chat")


def test_explicit_provider_model_and_base_url_are_honoured_and_the_key_is_never_shown() -> None:
    settings = Settings(provider="openai", model="gpt-4o", openai_api_key=SecretStr("sk-hidden"))
    choice = choose_provider(settings)
    assert choice.model == "gpt-4o" and "sk-hidden" not in choice.describe()
    assert "API key set" in choice.describe()
    local = choose_provider(Settings(provider="local", base_url="http://127.0.0.1:9999/v1"))
    assert local.profile.base_url == "http://127.0.0.1:9999/v1" and local.api_key is None


def _messages(*history: str, system: str = "You are helpful.") -> list[dict]:
    return [{"role": "system", "content": system}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(history)
    ]


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def test_segments_add_up_to_the_provider_count_and_hits_fill_from_the_start() -> None:
    tracker = CacheTracker()
    segments = tracker.segments(_messages("hello there"), TOOLS, input_tokens=1000, cache_tokens=0)
    assert sum(s.tokens for s in segments) == 1000
    assert [s.segment for s in segments] == ["system", "tools", "history", "attachments"]
    again = tracker.segments(
        _messages("hello there", "hi", "more"), TOOLS, input_tokens=1200, cache_tokens=700
    )
    by_name = {s.segment: s for s in again}
    assert sum(s.hit_tokens for s in again) == 700
    assert by_name["system"].miss_tokens == 0 and by_name["tools"].miss_tokens == 0
    assert by_name["attachments"].tokens == 0
    for s in again:
        assert s.hit_tokens + s.miss_tokens == s.tokens


def test_prefix_hashes_show_which_segment_changed() -> None:
    tracker = CacheTracker()
    first = {
        s.segment: s
        for s in tracker.segments(_messages("a"), TOOLS, input_tokens=100, cache_tokens=0)
    }
    grown = {
        s.segment: s
        for s in tracker.segments(
            _messages("a", "b", "c"), TOOLS, input_tokens=150, cache_tokens=90
        )
    }
    assert grown["history"].prefix_hash == first["history"].hash  # appended only: no break
    assert grown["system"].prefix_hash == first["system"].hash
    edited = {
        s.segment: s
        for s in tracker.segments(
            _messages("A", "b", "c", "d"), TOOLS, input_tokens=160, cache_tokens=0
        )
    }
    assert edited["history"].prefix_hash != grown["history"].hash  # an old message changed
    new_system = {
        s.segment: s
        for s in tracker.segments(
            _messages("A", "b", "c", "d", system="Be terse."),
            TOOLS,
            input_tokens=160,
            cache_tokens=0,
        )
    }
    assert new_system["system"].prefix_hash != edited["system"].hash


def test_images_count_as_attachments_not_as_their_data_uri_length() -> None:
    uri = "data:image/png;base64," + "A" * 50_000
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": uri}},
            ],
        }
    ]
    prompt = PromptSegments.split(messages, None)
    assert len(prompt.attachments) == 1 and uri not in str(prompt.history)
    by_name = {
        s.segment: s
        for s in CacheTracker().segments(messages, None, input_tokens=1000, cache_tokens=0)
    }
    # 85 estimated tokens for the image, against about 50 for the message around it
    # (the data URI's length would have made it thousands).
    assert by_name["attachments"].tokens > by_name["history"].tokens > 0


def test_a_tracker_that_remembers_measures_what_a_fresh_one_measures() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    conversation = _messages("hello there", "hi, how can I help?")
    conversation.append({"role": "user", "content": [{"type": "text", "text": "see"}, image]})
    tracker = CacheTracker()
    previous_history_hash = None
    for turn in range(4):
        conversation.append({"role": "assistant", "content": f"answer {turn} " * (turn + 1)})
        if turn == 2:
            conversation[1]["content"] = "hello there!"  # an old message edited in place
        remembered = tracker.segments(conversation, TOOLS, input_tokens=900, cache_tokens=300)
        fresh = CacheTracker().segments(conversation, TOOLS, input_tokens=900, cache_tokens=300)
        assert [(s.tokens, s.hit_tokens, s.hash) for s in remembered] == [
            (s.tokens, s.hit_tokens, s.hash) for s in fresh
        ]
        history = next(s for s in remembered if s.segment == "history")
        if turn == 2:
            assert history.prefix_hash != previous_history_hash
        elif turn > 0:
            assert history.prefix_hash == previous_history_hash
        previous_history_hash = history.hash


@pytest.mark.parametrize("total", [0, 1, 7, 999])
def test_scaling_never_loses_or_invents_tokens(total: int) -> None:
    segments = CacheTracker().segments(
        _messages("x y z"), TOOLS, input_tokens=total, cache_tokens=total // 2
    )
    assert sum(s.tokens for s in segments) == total
    assert sum(s.hit_tokens for s in segments) == total // 2
