"""The tools boonb ships: project files, ``fetch_url`` and ``notebook_vars``."""

from ..definition import Tool
from .files import FILE_TOOLS, grep, list_files, read_file, write_file
from .notebook import notebook_vars
from .web import fetch_url

BUILTIN_TOOLS: list[Tool] = [*FILE_TOOLS, fetch_url, notebook_vars]

__all__ = [
    "BUILTIN_TOOLS",
    "fetch_url",
    "grep",
    "list_files",
    "notebook_vars",
    "read_file",
    "write_file",
]
