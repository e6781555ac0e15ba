"""The agent host as a Dask actor: one per worker and kernel, emitting on the kernel's topic.

All it adds to :class:`~boonb.executors.host.AgentHost` is where batches go: the worker's
``log_event``, which the scheduler relays to the kernel's ``subscribe_topic``. It is made
with no arguments (an actor is a task whose arguments the scheduler keeps), so nothing
secret can be in its constructor.
"""

from __future__ import annotations

from pathlib import Path

from distributed import get_worker

from boonb.executors.host import AgentHost


class DaskAgentHost(AgentHost):
    """An :class:`AgentHost` living on a Dask worker (``client.submit(..., actor=True)``)."""

    def __init__(self) -> None:
        # Made in a task thread of the worker: get_worker() knows it there, and
        # log_event may be called from any thread (it hops onto the worker's loop).
        worker = get_worker()
        super().__init__(
            emit=worker.log_event,
            attachments_dir=Path(worker.local_directory) / "boonb-attachments",
        )
        self.worker_address: str = worker.address
