"""Whether the process that owns a row (a task, a run, a chat) still runs.

Kernels record their pid and host on what they own; a row whose owner died reads as
``interrupted``. Both the kernel side and the server need this check, so it lives here,
below both (the server may not import the agent layer).
"""

from __future__ import annotations

import os
import socket


def process_alive(pid: int | None) -> bool:
    """Whether a process of this host with that id still runs."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def owner_gone(pid: int | None, host: str | None) -> bool:
    """Whether the owner ``pid`` on ``host`` is known to have died.

    Only a process of this host can be checked: an owner on another host (or of unknown
    pid) is taken to be alive, so its rows are never wrongly marked interrupted. An
    unknown host is taken to be this one, as rows written before hosts were recorded are.
    """
    if pid is None or (host is not None and host != socket.gethostname()):
        return False
    return pid != os.getpid() and not process_alive(pid)
