"""Model profiles: where a provider lives, what each model can do and what it costs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from .errors import ProviderError
from .usage import Usage

_PER_MTOK = 1_000_000
# OpenAI answers with dated snapshot names ("gpt-4o-mini-2024-07-18") for an alias request.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Capabilities(_Frozen):
    """What a model accepts and produces."""

    tools: bool
    vision: bool
    reasoning: bool


class Prices(_Frozen):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    """Price of a prompt token that missed the cache."""
    cache_hit_input_per_mtok: float = Field(ge=0)
    """Price of a prompt token read from the provider's prefix cache."""
    output_per_mtok: float = Field(ge=0)
    """Price of a generated token (reasoning tokens included)."""

    def cost(self, usage: Usage) -> float:
        """USD for one call: misses at the input price, hits at the cache price, output."""
        return (
            usage.cache_miss_tokens * self.input_per_mtok
            + usage.cache_tokens * self.cache_hit_input_per_mtok
            + usage.output_tokens * self.output_per_mtok
        ) / _PER_MTOK

    def cache_savings(self, usage: Usage) -> float:
        """USD the cache hits saved against paying the full input price for them."""
        saved_per_mtok = self.input_per_mtok - self.cache_hit_input_per_mtok
        return usage.cache_tokens * saved_per_mtok / _PER_MTOK


class ModelSpec(_Frozen):
    """What one model of a profile can do and what it costs."""

    capabilities: Capabilities
    prices: Prices | None = None
    """``None`` when the price is unknown (local servers); cost figures are then ``None``."""


class Profile(_Frozen):
    """An OpenAI-compatible endpoint and the models boonb knows on it."""

    name: str
    base_url: str
    default_model: str
    api_key_env: str | None
    """Environment variable holding the API key; ``None`` when the server needs no key."""
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    default_capabilities: Capabilities
    """Capabilities assumed for a model name this profile does not list."""

    def spec(self, model: str) -> ModelSpec:
        """Look up ``model``; an unknown model gets the default capabilities and no prices."""
        if model in self.models:
            return self.models[model]
        base = _SNAPSHOT_SUFFIX.sub("", model)
        if base in self.models:
            return self.models[base]
        return ModelSpec(capabilities=self.default_capabilities, prices=None)

    def with_overrides(
        self,
        *,
        base_url: str | None = None,
        default_model: str | None = None,
        api_key_env: str | None = None,
        default_capabilities: Capabilities | None = None,
        capabilities: Mapping[str, Capabilities] | None = None,
        prices: Mapping[str, Prices | None] | None = None,
    ) -> Profile:
        """Return a copy with the given settings replaced.

        ``capabilities`` and ``prices`` are per model name; a model the profile does not
        list yet is added (with the default capabilities where only a price is given).
        """
        models = dict(self.models)
        new_default_caps = default_capabilities or self.default_capabilities
        for model, caps in (capabilities or {}).items():
            current = self.spec(model)
            models[model] = ModelSpec(capabilities=caps, prices=current.prices)
        for model, price in (prices or {}).items():
            current = models.get(model) or ModelSpec(capabilities=new_default_caps)
            models[model] = ModelSpec(capabilities=current.capabilities, prices=price)
        update: dict[str, object] = {"models": models, "default_capabilities": new_default_caps}
        if base_url is not None:
            update["base_url"] = base_url
        if default_model is not None:
            update["default_model"] = default_model
        if api_key_env is not None:
            update["api_key_env"] = api_key_env
        return self.model_copy(update=update)


def _usd(input_miss: float, input_hit: float, output: float) -> Prices:
    return Prices(
        input_per_mtok=input_miss, cache_hit_input_per_mtok=input_hit, output_per_mtok=output
    )


class UnknownProfileError(ProviderError, KeyError):
    """No built-in profile has the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_TEXT_TOOLS = Capabilities(tools=True, vision=False, reasoning=False)
_ALL = Capabilities(tools=True, vision=True, reasoning=True)

# DeepSeek: https://api-docs.deepseek.com/quick_start/pricing (USD per 1M tokens), the
# DeepSeek-V3.2 price list both endpoints share, as reported from that page in April 2026
# (benchlm.ai "DeepSeek API Pricing", 2026-04-13; Roo-Code's deepseek.ts "Updated Dec 9,
# 2025"). Before that (from 2025-09-05) it was 0.07 / 0.56 / 1.68. Prices change: override
# with Profile.with_overrides(prices=...).
_DEEPSEEK_V32 = _usd(0.28, 0.028, 0.42)

DEEPSEEK = Profile(
    name="deepseek",
    base_url="https://api.deepseek.com",
    default_model="deepseek-chat",
    api_key_env="DEEPSEEK_API_KEY",
    models={
        "deepseek-chat": ModelSpec(capabilities=_TEXT_TOOLS, prices=_DEEPSEEK_V32),
        "deepseek-reasoner": ModelSpec(
            capabilities=Capabilities(tools=True, vision=False, reasoning=True),
            prices=_DEEPSEEK_V32,
        ),
    },
    default_capabilities=_TEXT_TOOLS,
)

# OpenAI: https://openai.com/api/pricing (developers.openai.com/api/docs/pricing), standard
# tier, USD per 1M tokens (input / cached input / output), as listed in 2026.
OPENAI = Profile(
    name="openai",
    base_url="https://api.openai.com/v1",
    default_model="gpt-4o-mini",
    api_key_env="OPENAI_API_KEY",
    models={
        "gpt-4o-mini": ModelSpec(
            capabilities=Capabilities(tools=True, vision=True, reasoning=False),
            prices=_usd(0.15, 0.075, 0.60),
        ),
        "gpt-4o": ModelSpec(
            capabilities=Capabilities(tools=True, vision=True, reasoning=False),
            prices=_usd(2.50, 1.25, 10.00),
        ),
        "gpt-4.1-mini": ModelSpec(
            capabilities=Capabilities(tools=True, vision=True, reasoning=False),
            prices=_usd(0.40, 0.10, 1.60),
        ),
        "o4-mini": ModelSpec(
            capabilities=_ALL,
            prices=_usd(1.10, 0.275, 4.40),
        ),
    },
    default_capabilities=Capabilities(tools=True, vision=True, reasoning=False),
)

# vLLM, Ollama (`/v1`), llama.cpp's server: whatever model is loaded, no key, no price.
LOCAL = Profile(
    name="local",
    base_url="http://127.0.0.1:8000/v1",
    default_model="local-model",
    api_key_env=None,
    models={},
    default_capabilities=_TEXT_TOOLS,
)

# boonb.sim: the base URL is the simulator's, known only once it runs. The prices are
# illustrative (DeepSeek-like) so notebooks and benchmarks show cost and savings figures.
SIM = Profile(
    name="sim",
    base_url="http://127.0.0.1:0/v1",
    default_model="sim-chat",
    api_key_env=None,
    models={
        "sim-chat": ModelSpec(
            capabilities=_ALL,
            prices=_usd(0.28, 0.028, 0.42),
        ),
    },
    default_capabilities=_ALL,
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {p.name: p for p in (DEEPSEEK, OPENAI, LOCAL, SIM)}
)


def get_profile(name: str) -> Profile:
    """Return the built-in profile ``name`` (``deepseek``, ``openai``, ``local``, ``sim``)."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(
            f"unknown provider profile {name!r}; known profiles: {known}. "
            "For another OpenAI-compatible server use get_profile('local')"
            ".with_overrides(base_url=...)."
        ) from None
