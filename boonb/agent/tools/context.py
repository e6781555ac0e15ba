"""What a tool may see of the world it runs in, passed to every call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ToolContext:
    """Per-call settings and resources; a parameter annotated ``ToolContext`` receives it.

    It is injected by :meth:`Tool.invoke` and never appears in the schema the model sees,
    so a model cannot widen its own sandbox.
    """

    project_root: Path
    """File tools are confined to this directory (after resolving symlinks)."""
    user_ns: Mapping[str, Any] | None = None
    """The notebook's namespace, for read-only inspection; ``None`` outside a kernel."""
    fetch_max_bytes: int = 1_000_000
    """Upper bound on the body bytes ``fetch_url`` reads, whatever the model asks for."""
    fetch_timeout: float = 20.0
    """Seconds ``fetch_url`` may spend on one request, redirects and body included."""
