"""IPython magics, the thin front door: each parses its line, calls one function, displays."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

from boonb.magics.agent import AgentMagics
from boonb.magics.status import BoonbMagics


def register(shell: InteractiveShell) -> None:
    shell.register_magics(BoonbMagics, AgentMagics)


__all__ = ["AgentMagics", "BoonbMagics", "register"]
