"""The one root of every error a user can hit, and its groups.

``except boonb.BoonbError`` catches anything boonb raises on purpose; a group
(``StoreError``, ``ProviderError``, ...) catches one concern. Each concern defines its
specific errors under its group, in its own ``errors`` module; the groups live here so
the whole hierarchy reads in one place. Every message says what went wrong and what to
do next, so a magic prints it as it is, without a traceback.

This module imports nothing from boonb: every layer may import it.

::

    BoonbError
    ├── ConfigError (also ValueError)   a setting name or value boonb cannot use
    ├── StoreError                      the project database (boonb.store.errors)
    ├── ProviderError                   the model server (boonb.providers.errors)
    ├── AgentError                      an agent run that cannot go on
    ├── ToolError                       a tool call (boonb.agent.tools.errors)
    ├── WorkflowError                   workflows: discovery, arguments, runs, budgets
    ├── SandboxError                    the workflow sandbox's worker processes
    ├── AttachmentError                 images and other files given to an agent
    └── ExecutorError                   where agents run (boonb.executors)
        ├── ExecutorUnavailable         no cluster, or workers that do not match
        └── WorkerLost                  a Dask worker died mid-agent
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AttachmentError",
    "BoonbError",
    "ConfigError",
    "ExecutorError",
    "ExecutorUnavailable",
    "ProviderError",
    "SandboxError",
    "StoreError",
    "ToolError",
    "WorkerLost",
    "WorkflowError",
]


class BoonbError(Exception):
    """Base class of every error boonb raises for a user to read.

    Its message says what to do next; catching this one class is enough to show any
    boonb failure as a short line instead of a traceback.
    """


class ConfigError(BoonbError, ValueError):
    """A setting name or value that boonb cannot use (``%boonb config``, ``BOONB_*``)."""


class StoreError(BoonbError):
    """Base class of every error the store (the project's DuckDB database) raises."""


class ProviderError(BoonbError):
    """Base class for every error raised by a provider client (the model server)."""


class AgentError(BoonbError):
    """The agent could not go on (the model call failed after its retries)."""


class ToolError(BoonbError):
    """A tool could not do what it was asked; the message says why and what to try instead."""


class WorkflowError(BoonbError):
    """A workflow could not be found, started or served.

    Raised for an unknown workflow or run, arguments that do not fit, a workflow file
    that cannot be used, an exhausted budget, and a call from a script that cannot be
    served (unknown agent, bad input); the script sees the last as its own
    ``WorkflowError`` with the same message.
    """


class SandboxError(BoonbError):
    """The workflow sandbox failed (a worker died or broke the protocol)."""


class AttachmentError(BoonbError):
    """An image or file given to an agent cannot be used (type, size, or unreadable)."""


class ExecutorError(BoonbError):
    """An agent could not be run where the executor sends it (``executor=local|dask``)."""


class ExecutorUnavailable(ExecutorError):
    """The configured executor cannot take agents: no cluster, or workers that do not match."""


class WorkerLost(ExecutorError):
    """The Dask worker running an agent died or stopped answering mid-run."""
