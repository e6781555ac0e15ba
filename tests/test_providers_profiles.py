import pytest

from boonb.providers import (
    PROFILES,
    Capabilities,
    Prices,
    UnknownProfileError,
    Usage,
    get_profile,
)


def test_usage_from_deepseek_counts_hits_inside_input():
    usage = Usage.from_api({
        "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
        "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36,
        "completion_tokens_details": {"reasoning_tokens": 5},
    })
    assert usage == Usage(input_tokens=100, output_tokens=20, cache_tokens=64, reasoning_tokens=5)
    assert usage.cache_miss_tokens == 36
    assert usage.tokens_used == 120


def test_usage_from_deepseek_without_prompt_tokens_sums_hit_and_miss():
    usage = Usage.from_api({"prompt_cache_hit_tokens": 10, "prompt_cache_miss_tokens": 5})
    assert (usage.input_tokens, usage.cache_tokens, usage.cache_miss_tokens) == (15, 10, 5)


def test_usage_from_openai_reads_details_objects():
    usage = Usage.from_api({
        "prompt_tokens": 2006, "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256},
    })
    assert usage == Usage(2006, 300, 1920, 256)


@pytest.mark.parametrize("raw", [
    None,
    {},
    {"prompt_tokens": None, "completion_tokens": None, "prompt_tokens_details": None,
     "completion_tokens_details": None, "prompt_cache_hit_tokens": None},
])
def test_usage_from_api_tolerates_missing_and_null_fields(raw):
    assert Usage.from_api(raw) == Usage(reported=False)


@pytest.mark.parametrize(("raw", "expected"), [
    # Gemini's OpenAI-compatible endpoint: thinking only in total_tokens.
    ({"prompt_tokens": 20, "completion_tokens": 424, "total_tokens": 1016},
     Usage(input_tokens=20, output_tokens=996, reasoning_tokens=572)),
    # A gateway that reports the same hidden tokens as reasoning, outside completion.
    ({"prompt_tokens": 21, "completion_tokens": 0, "total_tokens": 81,
      "completion_tokens_details": {"reasoning_tokens": 60}},
     Usage(input_tokens=21, output_tokens=60, reasoning_tokens=60)),
    # OpenAI: total = prompt + completion, reasoning already inside completion.
    ({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
      "completion_tokens_details": {"reasoning_tokens": 256}},
     Usage(input_tokens=2006, output_tokens=300, reasoning_tokens=256)),
    # A total smaller than the parts is a server's bookkeeping slip, not negative tokens.
    ({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 12},
     Usage(input_tokens=10, output_tokens=5)),
])
def test_total_tokens_beyond_prompt_plus_completion_is_hidden_reasoning(raw, expected):
    usage = Usage.from_api(raw)
    assert usage == expected
    assert usage.tokens_used == max(raw["total_tokens"], raw["prompt_tokens"]
                                    + raw["completion_tokens"])


def test_usage_sum_is_unreported_when_any_call_was():
    reported = Usage(10, 2)
    assert (reported + reported).reported is True
    assert (reported + Usage.from_api(None)).reported is False
    assert (Usage.from_api({}) + reported).reported is False
    assert Usage.from_api({"prompt_tokens": 0, "completion_tokens": 0}).reported is True


def test_usage_adds_field_by_field():
    total = Usage(10, 2, 4, 1) + Usage(5, 3, 5, 0)
    assert total == Usage(15, 5, 9, 1)
    assert total.cache_miss_tokens == 6


def test_prices_cost_charges_misses_hits_and_output_separately():
    prices = Prices(input_per_mtok=0.28, cache_hit_input_per_mtok=0.028, output_per_mtok=0.42)
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_tokens=600_000)
    assert prices.cost(usage) == pytest.approx(0.4 * 0.28 + 0.6 * 0.028 + 0.42)
    assert prices.cache_savings(usage) == pytest.approx(0.6 * (0.28 - 0.028))


def test_builtin_profiles_match_the_design():
    deepseek = get_profile("deepseek")
    assert deepseek.base_url == "https://api.deepseek.com"
    assert deepseek.default_model == "deepseek-chat"
    assert deepseek.api_key_env == "DEEPSEEK_API_KEY"
    assert deepseek.spec("deepseek-chat").capabilities == Capabilities(
        tools=True, vision=False, reasoning=False)
    assert deepseek.spec("deepseek-reasoner").capabilities.reasoning
    openai = get_profile("openai")
    assert openai.base_url == "https://api.openai.com/v1"
    assert openai.default_model == "gpt-4o-mini"
    assert openai.spec("gpt-4o").capabilities.vision
    assert openai.spec("o4-mini").capabilities.reasoning
    local = get_profile("local")
    assert local.api_key_env is None
    assert local.spec("llama3").prices is None
    assert local.spec("llama3").capabilities == Capabilities(
        tools=True, vision=False, reasoning=False)
    sim = get_profile("sim")
    assert sim.default_model == "sim-chat"
    assert sim.spec("sim-chat").capabilities == Capabilities(
        tools=True, vision=True, reasoning=True)
    assert sim.spec("sim-chat").prices is not None
    assert sorted(PROFILES) == ["deepseek", "local", "openai", "sim"]


def test_spec_resolves_dated_snapshot_names_to_their_alias():
    openai = get_profile("openai")
    assert openai.spec("gpt-4o-mini-2024-07-18") == openai.spec("gpt-4o-mini")
    assert openai.spec("gpt-4o-2024-08-06") == openai.spec("gpt-4o")


def test_unknown_model_falls_back_to_default_capabilities_without_prices():
    spec = get_profile("deepseek").spec("deepseek-future")
    assert spec.capabilities == get_profile("deepseek").default_capabilities
    assert spec.prices is None


def test_with_overrides_replaces_base_url_capabilities_and_prices():
    base = get_profile("local")
    vision = Capabilities(tools=True, vision=True, reasoning=False)
    price = Prices(input_per_mtok=1, cache_hit_input_per_mtok=0.5, output_per_mtok=2)
    profile = base.with_overrides(
        base_url="http://127.0.0.1:11434/v1",
        default_model="llava",
        capabilities={"llava": vision},
        prices={"llava": price, "qwen": price},
    )
    assert profile.base_url == "http://127.0.0.1:11434/v1"
    assert profile.default_model == "llava"
    assert profile.spec("llava").capabilities == vision
    assert profile.spec("llava").prices == price
    assert profile.spec("qwen").capabilities == base.default_capabilities
    assert profile.spec("qwen").prices == price
    assert base.base_url == "http://127.0.0.1:8000/v1"  # the built-in is untouched
    assert base.models == {}


def test_with_overrides_can_change_default_capabilities():
    caps = Capabilities(tools=False, vision=True, reasoning=False)
    profile = get_profile("local").with_overrides(default_capabilities=caps)
    assert profile.spec("anything").capabilities == caps


def test_get_profile_unknown_name_lists_known_profiles():
    with pytest.raises(UnknownProfileError) as info:
        get_profile("anthropic")
    message = str(info.value)
    assert "'anthropic'" in message
    assert "deepseek, local, openai, sim" in message
