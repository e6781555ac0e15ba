"""anywidget classes (the Python side); their views are built from ``labextension/``."""

from __future__ import annotations

from boonb.widgets.chat import ChatView
from boonb.widgets.traceviewer import ChatIdError, TraceViewer

__all__ = ["ChatIdError", "ChatView", "TraceViewer"]
