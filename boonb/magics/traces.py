"""``%traces [CHAT_ID]``: show a chat's traces in the trace viewer (default: the last chat)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from boonb.magics.lines import MagicLine, Positional, help_text
from boonb.magics.report import reports_errors
from boonb.widgets import TraceViewer


class TracesLine(MagicLine):
    """``%traces [CHAT]``: which chat's traces to show."""

    command: ClassVar[str] = "%traces"

    chat: Annotated[
        str | None,
        Positional("CHAT", "the chat id, as %agent sessions lists it (default: the last chat)"),
    ] = None


TRACES_HELP = help_text(
    "Show a chat's traces (default: the kernel's last chat) as a live tree.", TracesLine
)


@magics_class
class TracesMagics(Magics):
    """The ``%traces`` magic: a chat's model and tool calls in the trace viewer."""

    @line_magic
    @reports_errors
    def traces(self, line: str) -> None:
        display(TraceViewer(chat_id=TracesLine.parse(line).chat))

    traces.__doc__ = TRACES_HELP
