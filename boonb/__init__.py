"""boonb: Jupyter as an agent orchestrator.

``%load_ext boonb`` registers the magics. From Python: ``boonb.tool`` makes a function
a tool for every agent of the kernel, ``boonb.new_agent`` and ``boonb.start`` run
agents, and ``boonb.traces()`` returns the traces as a DuckDB relation for SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boonb.errors import BoonbError

if TYPE_CHECKING:  # what type checkers and editors see; at run time, see __getattr__
    from boonb.api import (
        AgentHandle,
        TaskHandle,
        cache_breaks,
        export_otel,
        find_chat,
        new_agent,
        restore,
        resume,
        sessions,
        spawn,
        start,
        tool,
        traces,
        use_dask,
    )

__version__ = "0.1.0"

# The public functions load on first use: importing them pulls in DuckDB, httpx and the
# kernel runtime (0.8 s), which the Jupyter server extension and the workflow sandbox's
# worker processes import boonb without needing.
_API = (
    "AgentHandle", "TaskHandle", "cache_breaks", "export_otel", "find_chat", "new_agent",
    "restore", "resume", "sessions", "spawn", "start", "tool", "traces", "use_dask",
)  # fmt: skip

__all__ = [
    "AgentHandle", "BoonbError", "TaskHandle", "__version__", "cache_breaks", "export_otel",
    "find_chat", "load_ipython_extension", "new_agent", "restore", "resume", "sessions", "spawn",
    "start", "tool", "traces", "use_dask",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _API:
        from boonb import api

        return getattr(api, name)
    raise AttributeError(f"module 'boonb' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is, for ``jupyter labextension develop``.

    A wheel installs it as shared-data (pyproject); ``make widgets`` links the venv's Lab to
    this build output instead, so a rebuild shows after a page reload.
    """
    return [{"src": "labextension", "dest": "boonb"}]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext boonb``: register the magics and open the project database."""
    import sys

    from boonb.magics import register
    from boonb.runtime import get_runtime
    from boonb.store import StoreError

    register(shell)
    try:
        runtime = get_runtime()
        runtime.store.writer.flush()
        runtime.workflows.discovery()  # found once now (logged); %workflow list --refresh rescans
    except StoreError as exc:
        # A short message, not a traceback: the user fixes the path with %boonb config.
        print(f"boonb: the database cannot be used: {exc}", file=sys.stderr)
