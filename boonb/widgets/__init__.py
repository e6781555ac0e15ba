"""anywidget classes (the Python side); their views are built from ``labextension/``.

The widget classes load on first use: importing them pulls in anywidget and ipywidgets,
which the Jupyter server extension must not load, yet it imports this package's protocol
modules and the answers the widgets share with it (``trace_answers``, ``task_answers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time, see __getattr__
    from boonb.widgets.chat import ChatView
    from boonb.widgets.common import ChatIdError
    from boonb.widgets.traceviewer import TraceViewer

__all__ = ["ChatIdError", "ChatView", "TraceViewer"]


def __getattr__(name: str) -> Any:
    if name == "ChatView":
        from boonb.widgets.chat import ChatView

        return ChatView
    if name == "ChatIdError":
        from boonb.widgets.common import ChatIdError

        return ChatIdError
    if name == "TraceViewer":
        from boonb.widgets.traceviewer import TraceViewer

        return TraceViewer
    raise AttributeError(f"module 'boonb.widgets' has no attribute {name!r}")
