"""Where background and workflow agents run: in this kernel, or on Dask workers.

Callers hand an :class:`AgentRunSpec` to ``executor.run_agent`` and get the run's
``AgentResult``; either way the agent's frames and rows reach this kernel's bus and
writer before the call returns, so traces, sessions and views do not know the difference.
"""

from boonb.executors.spec import AgentRunSpec, Executor, ExecutorStatus

__all__ = ["AgentRunSpec", "Executor", "ExecutorStatus"]
