"""The workflow sandbox: untrusted workflow scripts run in confined worker processes.

Three layers, each enough to stop the usual escapes on its own where it applies:
RestrictedPython with a narrow policy and a step counter (``_policy``), resource limits
and a seccomp allow-list in the worker (``_confine``), and a pipe protocol whose every
call the host validates (``_models``) before a handler acts on it (``_pool``).
"""

from ._limits import Limits
from ._models import (
    AgentInput,
    AgentRegisterCall,
    AgentRunCall,
    AgentSpec,
    ApiCall,
    BudgetSpec,
    LogCall,
    ParallelCall,
    PhaseCall,
    SandboxResult,
)
from ._pool import Handler, SandboxPool

__all__ = [
    "AgentInput",
    "AgentRegisterCall",
    "AgentRunCall",
    "AgentSpec",
    "ApiCall",
    "BudgetSpec",
    "Handler",
    "Limits",
    "LogCall",
    "ParallelCall",
    "PhaseCall",
    "SandboxPool",
    "SandboxResult",
]
