"""The side panels' tests get a JupyterLab server of their own.

The panels show everything in their project, and these tests leave chats, tasks and runs
in it; the other browser tests count what their project holds, so they keep the session's
server and these run in another project.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..lab_server import LabServer, start_lab


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("panels-lab")
    server = start_lab(root=base / "root", state_dir=base / "state")
    try:
        yield server
    finally:
        server.stop()
