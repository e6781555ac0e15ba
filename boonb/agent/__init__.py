"""Agents: the turn loop, tools, tracing of every call, and prompt-cache telemetry."""

from boonb.agent.loop import Agent, AgentError, AgentResult, RunStats
from boonb.agent.provider import ProviderChoice, choose_provider
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.registry import Tool, ToolRegistry, default_registry, tool

__all__ = [
    "Agent",
    "AgentError",
    "AgentResult",
    "ProviderChoice",
    "RunStats",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "choose_provider",
    "default_registry",
    "tool",
]
