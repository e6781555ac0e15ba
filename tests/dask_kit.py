"""What the Dask tests share: one real two-worker LocalCluster per test module.

Workers are separate processes (``processes=True``), as on a real cluster: an agent there
shares nothing with the kernel but what the wire carries. The cluster starts in 1-3 s
here, so a module starts one and its tests share it (the module budget is 60 s).

The workers' stderr (their logs) goes to a file the tests can read: they inherit the
file descriptor when they are spawned, and pytest's own capture never sees it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, LocalCluster


@dataclass
class Cluster:
    """The running cluster: its scheduler address and a sync client for the tests' checks."""

    cluster: LocalCluster
    client: Client
    stderr: Path

    @property
    def address(self) -> str:
        return str(self.cluster.scheduler_address)

    def worker_pids(self) -> dict[str, int]:
        """Each worker's address and process id."""
        return dict(self.client.run(os.getpid))

    def worker_stderr(self) -> str:
        return self.stderr.read_text(errors="replace")


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """fd 2 points at ``path`` while worker processes are spawned, so they write there."""
    saved = os.dup(2)
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_cluster(folder: Path) -> Cluster:
    """Two single-thread worker processes on loopback, no dashboards."""
    stderr = folder / "workers.stderr"
    stderr.touch()
    with _stderr_to(stderr):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.WARNING,
            local_directory=str(folder / "dask-space"),
        )
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(2, timeout=60)
    return Cluster(cluster, client, stderr)


def stop_cluster(cluster: Cluster) -> None:
    cluster.client.close()
    cluster.cluster.close()
