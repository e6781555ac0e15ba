from __future__ import annotations

import pytest
from pydantic import SecretStr

from boonb.agent.cache import CacheTracker, PromptSegments
from boonb.agent.provider import choose_provider
from boonb.config import Settings
from boonb.sim import Rule
from tests.conftest import Env


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
        _messages("hello there", "hi", "more"), TOOLS, input_tokens=1200, cache_tokens=1000
    )  # the first prompt, cached
    by_name = {s.segment: s for s in again}
    assert sum(s.hit_tokens for s in again) == 1000
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
        # Sizes differ by design (a tracker keeps what it sized before); hashes must not.
        assert [s.hash for s in remembered] == [s.hash for s in fresh]
        assert sum(s.tokens for s in remembered) == 900
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


def _sizes(segments: list) -> dict[str, int]:
    return {s.segment: s.tokens for s in segments}


def test_an_unchanged_segment_reports_the_same_size_every_turn() -> None:
    # The case: the provider's count grows by more or less than the estimate of
    # what was appended, and scaling every segment to it moved the unchanged ones.
    tracker = CacheTracker()
    conversation = _messages("what files mention revenue?")
    sizes = []
    for turn, total in enumerate([500, 640, 760, 1_000]):
        segments = tracker.segments(conversation, TOOLS, input_tokens=total, cache_tokens=0)
        assert sum(s.tokens for s in segments) == total
        sizes.append(_sizes(segments))
        conversation.append({"role": "assistant", "content": f"reading file {turn} " * 9})
        conversation.append({"role": "user", "content": "go on"})
    assert len({s["system"] for s in sizes}) == 1
    assert len({s["tools"] for s in sizes}) == 1
    # The difference went to the segment that grew.
    for before, after, growth in zip(sizes, sizes[1:], [140, 120, 240], strict=False):
        assert after["history"] - before["history"] == growth


def test_the_difference_goes_to_the_segment_that_changed() -> None:
    tracker = CacheTracker()
    conversation = _messages("hello", "hi")
    first = _sizes(tracker.segments(conversation, TOOLS, input_tokens=400, cache_tokens=0))
    conversation[0]["content"] = "You are helpful. Answer in French, and be brief about it."
    second = _sizes(tracker.segments(conversation, TOOLS, input_tokens=460, cache_tokens=0))
    assert second["tools"] == first["tools"] and second["history"] == first["history"]
    assert second["system"] == first["system"] + 60


def test_a_provider_count_below_the_kept_sizes_measures_afresh() -> None:
    tracker = CacheTracker()
    conversation = _messages("hello there", "hi")
    tracker.segments(conversation, TOOLS, input_tokens=1_000, cache_tokens=0)
    conversation.append({"role": "user", "content": "more"})
    segments = tracker.segments(conversation, TOOLS, input_tokens=300, cache_tokens=100)
    assert sum(s.tokens for s in segments) == 300
    assert sum(s.hit_tokens for s in segments) == 100
    assert all(s.tokens >= 0 for s in segments)


def test_an_agents_unchanged_system_and_tools_keep_their_size_in_cache_stats(env: Env) -> None:
    env.sim.add_rule(
        Rule("notes", tool_calls=[{"name": "read_file", "arguments": {"path": "notes.txt"}}])
    )
    agent = env.agent()
    env.run(agent, "what do the notes say?")
    env.run(agent, "and the notes again, please")
    rows = env.rows(
        "SELECT segment, list(DISTINCT tokens), count(*) FROM cache_stats WHERE chat_id = ? "
        "GROUP BY segment",
        agent.chat_id,
    )
    by_segment = {segment: (sizes, calls) for segment, sizes, calls in rows}
    assert by_segment["system"][1] >= 3
    assert len(by_segment["system"][0]) == 1 and len(by_segment["tools"][0]) == 1
