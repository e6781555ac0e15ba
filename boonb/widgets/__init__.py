"""anywidget classes (the Python side); their views are built from ``labextension/``."""

from __future__ import annotations

from boonb.widgets.chat import ChatView
from boonb.widgets.common import ChatIdError
from boonb.widgets.traceviewer import TraceViewer

__all__ = ["ChatIdError", "ChatView", "TraceViewer"]
