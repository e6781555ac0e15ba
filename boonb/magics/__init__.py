"""IPython magics: the thin front door. Each parses its line, calls one library function, displays."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

from boonb.magics.status import BoonbMagics


def register(shell: InteractiveShell) -> None:
    shell.register_magics(BoonbMagics)


__all__ = ["BoonbMagics", "register"]
