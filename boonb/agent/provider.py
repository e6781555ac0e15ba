"""Which provider, model and key an agent uses, from the settings.

``provider="auto"`` picks DeepSeek when its key is set, then OpenAI, else the
built-in simulator, so a fresh machine works offline with no configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from boonb.config import Settings
from boonb.providers import Profile, get_profile


@dataclass(frozen=True)
class ProviderChoice:
    """The provider the settings select: its profile, the model to ask and the key to send."""

    name: str
    profile: Profile
    model: str
    api_key: str | None

    @property
    def simulated(self) -> bool:
        return self.name == "sim"

    def describe(self) -> str:
        """One line for status displays; says whether a key is set, never the key."""
        if self.simulated:
            return f"sim (built-in simulator, not a real model), model {self.model}"
        key = "API key set" if self.api_key else "no API key"
        return f"{self.name} at {self.profile.base_url}, model {self.model}, {key}"


def choose_provider(settings: Settings, *, sim_base_url: str | None = None) -> ProviderChoice:
    """Resolve the settings to one provider; the simulator's URL is given by whoever runs it."""
    deepseek = settings.deepseek_api_key.get_secret_value() if settings.deepseek_api_key else None
    openai = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    name = settings.provider
    if name == "auto":
        name = "deepseek" if deepseek else "openai" if openai else "sim"
    key = {"deepseek": deepseek, "openai": openai}.get(name)
    profile = get_profile(name)
    base_url = settings.base_url or (sim_base_url if name == "sim" else None)
    if base_url:
        profile = profile.with_overrides(base_url=base_url)
    model = settings.model or profile.default_model
    if settings.vision is not None:  # the user knows better than the profile (a local model)
        caps = profile.spec(model).capabilities
        profile = profile.with_overrides(
            capabilities={model: caps.model_copy(update={"vision": settings.vision})}
        )
    return ProviderChoice(name, profile, model, key)
