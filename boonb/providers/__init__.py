"""OpenAI-compatible chat-completions client, model profiles and token usage.

Self-contained: the agent layer passes settings in (profile, key, model); nothing here
imports the rest of boonb.
"""

from .client import ChatClient
from .errors import (
    AuthenticationError,
    CapabilityError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
    ToolArgumentsError,
)
from .profiles import (
    PROFILES,
    Capabilities,
    ModelSpec,
    Prices,
    Profile,
    UnknownProfileError,
    get_profile,
)
from .results import (
    ChatResult,
    Completed,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallStarted,
)
from .usage import Usage

__all__ = [
    "PROFILES",
    "AuthenticationError",
    "Capabilities",
    "CapabilityError",
    "ChatClient",
    "ChatResult",
    "Completed",
    "ModelSpec",
    "Prices",
    "Profile",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeout",
    "RateLimitError",
    "ReasoningDelta",
    "ResponseFormatError",
    "ServerError",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallStarted",
    "UnknownProfileError",
    "Usage",
    "get_profile",
]
