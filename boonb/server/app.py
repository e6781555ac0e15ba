"""The extension's settings, and where it finds the project database.

The server runs in the notebook's working directory tree, while kernels write
``<project>/.boonb/boonb.duckdb`` with the project being their working directory.
So when nothing else says otherwise, the server's project is Jupyter's ``root_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Float, Unicode
from traitlets.config import Configurable

from boonb import config

DEFAULT_LOCK_TIMEOUT_S = 10.0


class BoonbServer(Configurable):
    """Settings of the boonb Jupyter server extension.

    Set them on the command line (``jupyter lab --BoonbServer.db_path=/x/boonb.duckdb``)
    or in ``jupyter_server_config.py`` (``c.BoonbServer.project = "/x"``).

    The database is, first found wins: ``BoonbServer.db_path``; ``BOONB_DB_PATH``;
    ``<project>/.boonb/boonb.duckdb``, the project being ``BoonbServer.project``,
    else ``BOONB_PROJECT``, else the server's ``root_dir``.
    """

    db_path = Unicode(
        "",
        help="DuckDB file to read; overrides BOONB_DB_PATH and the project's default file.",
    ).tag(config=True)

    project = Unicode(
        "",
        help=(
            "Project root whose .boonb/boonb.duckdb is read; defaults to BOONB_PROJECT, "
            "else the server's root_dir (where notebooks, and so kernels, start)."
        ),
    ).tag(config=True)

    lock_timeout = Float(
        None,
        allow_none=True,
        help=(
            "Seconds a request waits for a database another process holds before "
            "answering 503; defaults to BOONB_LOCK_TIMEOUT_S, else "
            f"{DEFAULT_LOCK_TIMEOUT_S:g}."
        ),
    ).tag(config=True)

    def database_path(self, root_dir: str | os.PathLike[str]) -> Path:
        """The DuckDB file this server reads, given the server's ``root_dir``."""
        if self.db_path:
            return _absolute(self.db_path)
        settings = config.from_environment()
        if settings.db_path is not None:
            return _absolute(settings.db_path)
        return self.project_root(root_dir) / ".boonb" / "boonb.duckdb"

    def project_root(self, root_dir: str | os.PathLike[str]) -> Path:
        """The project root, whose ``.boocode/workflows`` the orchestrator lists.

        ``BoonbServer.project``, else ``BOONB_PROJECT``, else the server's ``root_dir``.
        """
        settings = config.from_environment()
        if self.project:
            return _absolute(self.project)
        if "project" in settings.model_fields_set:
            return _absolute(settings.project)
        return _absolute(root_dir)

    def database_lock_timeout(self) -> float:
        """Seconds to wait for another process's lock before giving up."""
        if self.lock_timeout is not None:
            return float(self.lock_timeout)
        settings = config.from_environment()
        if "lock_timeout_s" in settings.model_fields_set:
            return settings.lock_timeout_s
        return DEFAULT_LOCK_TIMEOUT_S


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()
