"""Keep file tools inside the project root.

A path is checked after ``Path.resolve()``, which follows every symlink on the way, so
``..``, absolute paths and symlinks (at any level) that lead outside are all caught by
the same test. Callers then use the *resolved* path, so a later open cannot follow a
different link than the one checked.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from ..context import ToolContext
from ..errors import PathOutsideProject, ToolError

# boonb's own store and git's internals: never listed, searched or written by a model.
PRIVATE_DIRS = frozenset({".boonb", ".git"})


def project_root(context: ToolContext) -> Path:
    root = context.project_root.resolve()
    if not root.is_dir():
        raise ToolError(
            f"the project root {str(root)!r} is not a directory; set BOONB_PROJECT to "
            "an existing folder"
        )
    return root


def resolve_inside(context: ToolContext, path: str) -> Path:
    """The resolved absolute path for ``path`` relative to the root, or PathOutsideProject."""
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        raise PathOutsideProject(path, "absolute paths are refused")
    if "\x00" in path:
        raise PathOutsideProject(path, "it contains a NUL character")
    root = project_root(context)
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise PathOutsideProject(path, "it resolves outside the project root")
    return resolved


def relative(context: ToolContext, resolved: Path) -> str:
    """``resolved`` as the POSIX path a model should use in its next call."""
    rel = resolved.relative_to(project_root(context)).as_posix()
    return rel or "."


def is_private(context: ToolContext, resolved: Path) -> bool:
    parts = resolved.relative_to(project_root(context)).parts
    return any(part in PRIVATE_DIRS for part in parts)


def looks_binary(path: Path) -> bool:
    """NUL bytes in the first 8 KiB: the same test git and grep use."""
    with path.open("rb") as f:
        return b"\x00" in f.read(8192)
