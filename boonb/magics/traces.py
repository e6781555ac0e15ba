"""``%traces [CHAT_ID]``: show a chat's traces in the trace viewer (default: the last chat)."""

from __future__ import annotations

import shlex
import sys

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from boonb.store import StoreError
from boonb.widgets import ChatIdError, TraceViewer

USAGE = "usage: %traces [CHAT_ID]"


@magics_class
class TracesMagics(Magics):
    @line_magic
    def traces(self, line: str) -> None:
        """Show the traces of CHAT_ID (default: the kernel's last chat) as a live tree."""
        words = shlex.split(line)
        if len(words) > 1:
            print(USAGE, file=sys.stderr)
            return
        try:
            viewer = TraceViewer(chat_id=words[0] if words else None)
        except (ChatIdError, StoreError) as exc:
            print(f"boonb: {exc}", file=sys.stderr)
            return
        display(viewer)
