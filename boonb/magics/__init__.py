"""IPython magics, the thin front door: each parses its line, calls one function, displays."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

from boonb.magics.agent import AgentMagics
from boonb.magics.status import BoonbMagics
from boonb.magics.tasks import TasksMagics
from boonb.magics.traces import TracesMagics
from boonb.magics.workflow import WorkflowMagics


def register(shell: InteractiveShell) -> None:
    shell.register_magics(BoonbMagics, AgentMagics, TasksMagics, TracesMagics, WorkflowMagics)


__all__ = [
    "AgentMagics",
    "BoonbMagics",
    "TasksMagics",
    "TracesMagics",
    "WorkflowMagics",
    "register",
]
