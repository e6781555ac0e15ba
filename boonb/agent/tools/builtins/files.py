"""Project file tools: list, read, grep and write, confined to the project root.

They are sync functions on purpose: ``Tool.invoke`` runs them in a worker thread, so disk
I/O never blocks the event loop. Every output is capped so one call cannot flood the
model's context; each result says when it was cut short.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ..context import ToolContext
from ..definition import tool
from ..errors import ToolArgumentError, ToolError
from .paths import PRIVATE_DIRS, is_private, looks_binary, relative, resolve_inside

MAX_ENTRIES = 500
MAX_LINE_CHARS = 2000
MAX_MATCHES = 200
MAX_MATCH_CHARS = 300
MAX_GREP_FILE_BYTES = 5_000_000
# Listed but not descended into when recursing: large and rarely what the model wants.
_NO_DESCEND = PRIVATE_DIRS | {
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
}


@tool
def list_files(
    context: ToolContext,
    path: str = ".",
    pattern: str = "*",
    recursive: bool = False,
) -> dict[str, Any]:
    """List files and directories in the project.

    Directories end with '/', sizes are in bytes, and paths are relative to the project root.

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        path: Directory to list, relative to the project root.
        pattern: Shell-style pattern the entry names must match, e.g. '*.py'.
        recursive: Also list the contents of subdirectories.

    """
    directory = resolve_inside(context, path)
    if not directory.is_dir():
        raise ToolError(f"{path!r} is not a directory; use list_files on its parent")
    entries: list[dict[str, Any]] = []
    truncated = False
    for entry in _walk(directory, recursive=recursive):
        if not fnmatch.fnmatch(entry.name, pattern):
            continue
        if len(entries) == MAX_ENTRIES:
            truncated = True
            break
        entries.append(_describe(context, entry))
    result: dict[str, Any] = {
        "path": relative(context, directory),
        "entries": entries,
        "truncated": truncated,
    }
    if truncated:
        result["note"] = (
            f"only the first {MAX_ENTRIES} entries are shown; narrow the "
            "listing with path or pattern"
        )
    return result


def _walk(directory: Path, *, recursive: bool) -> list[Path]:
    found: list[Path] = []
    stack = [directory]
    while stack and len(found) <= MAX_ENTRIES * 20:
        current = stack.pop()
        try:
            children = sorted(current.iterdir(), key=lambda p: p.name)
        except OSError:
            continue  # unreadable directory: list what we can
        subdirs = []
        for child in children:
            if child.name in PRIVATE_DIRS:
                continue
            found.append(child)
            # is_symlink first: never follow a linked directory, it may lead outside.
            if (
                recursive
                and not child.is_symlink()
                and child.is_dir()
                and child.name not in _NO_DESCEND
            ):
                subdirs.append(child)
        stack.extend(reversed(subdirs))
    return found


def _describe(context: ToolContext, entry: Path) -> dict[str, Any]:
    name = entry.relative_to(context.project_root.resolve()).as_posix()
    if entry.is_symlink():
        return {"name": name, "symlink": True}
    if entry.is_dir():
        return {"name": name + "/"}
    try:
        return {"name": name, "size": entry.stat().st_size}
    except OSError:
        return {"name": name}


@tool
def read_file(
    context: ToolContext,
    path: str,
    offset: Annotated[int, Field(ge=0)] = 0,
    limit: Annotated[int, Field(ge=1, le=10_000)] = 2000,
) -> dict[str, Any]:
    """Read lines of a text file in the project (UTF-8; undecodable bytes are replaced).

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        path: File to read, relative to the project root.
        offset: Number of lines to skip from the start (0 reads from the first line).
        limit: Maximum number of lines to return.

    """
    file = resolve_inside(context, path)
    _require_file(path, file)
    if looks_binary(file):
        raise ToolError(
            f"{path!r} is a binary file (it contains NUL bytes); read_file only reads text files"
        )
    lines: list[str] = []
    total = 0
    long_lines = 0
    with file.open(encoding="utf-8", errors="replace", newline=None) as f:
        for total, line in enumerate(f, start=1):
            if offset < total <= offset + limit:
                text = line.rstrip("\n")
                if len(text) > MAX_LINE_CHARS:
                    text = text[:MAX_LINE_CHARS] + " [... line truncated]"
                    long_lines += 1
                lines.append(text)
    end = offset + len(lines)
    result: dict[str, Any] = {
        "path": relative(context, file),
        "content": "\n".join(lines),
        "start_line": offset + 1 if lines else None,
        "end_line": end if lines else None,
        "total_lines": total,
        "truncated": end < total or long_lines > 0,
    }
    if end < total:
        result["note"] = (
            f"showing lines {offset + 1}-{end} of {total}; call again with offset={end} for more"
        )
    elif offset >= total and total:
        result["note"] = f"offset {offset} is past the end of the file ({total} lines)"
    return result


def _require_file(path: str, file: Path) -> None:
    if file.is_dir():
        raise ToolError(f"{path!r} is a directory; use list_files to see its contents")
    if not file.is_file():
        raise ToolError(f"no such file: {path!r}; use list_files to see what exists")


@tool
def grep(
    context: ToolContext,
    pattern: str,
    path: str = ".",
    glob: str = "*",
) -> dict[str, Any]:
    """Search text files in the project for a regular expression.

    Matches come back as 'file:line:text' with 1-based line numbers.

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        pattern: Python regular expression, searched for in each line.
        path: File or directory to search, relative to the project root.
        glob: Shell-style pattern the file names must match, e.g. '*.md'.

    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolArgumentError(
            f"argument 'pattern': not a valid regular expression ({exc})"
        ) from None
    start = resolve_inside(context, path)
    if not start.exists():
        raise ToolError(f"no such file or directory: {path!r}; use list_files to see what exists")
    files = [start] if start.is_file() else _files_under(start)
    matches: list[str] = []
    searched = 0
    truncated = False
    for file in files:
        if not fnmatch.fnmatch(file.name, glob) or is_private(context, file):
            continue
        if not _searchable(context, file):
            continue
        searched += 1
        name = relative(context, file)
        with file.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if regex.search(line):
                    if len(matches) == MAX_MATCHES:
                        truncated = True
                        break
                    text = line.rstrip("\n")[:MAX_MATCH_CHARS]
                    matches.append(f"{name}:{number}:{text}")
        if truncated:
            break
    result: dict[str, Any] = {
        "matches": matches,
        "files_searched": searched,
        "truncated": truncated,
    }
    if truncated:
        result["note"] = (
            f"stopped after {MAX_MATCHES} matches; narrow the search with "
            "path, glob or a more specific pattern"
        )
    return result


def _files_under(directory: Path) -> list[Path]:
    found: list[Path] = []
    for current, dirs, names in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _NO_DESCEND)
        found.extend(Path(current, n) for n in sorted(names))
    return found


def _searchable(context: ToolContext, file: Path) -> bool:
    # A symlinked file is only searched if its target is inside the root, like any path.
    try:
        if not file.resolve().is_relative_to(context.project_root.resolve()):
            return False
        if not file.is_file():
            return False
        return file.stat().st_size <= MAX_GREP_FILE_BYTES and not looks_binary(file)
    except OSError:
        return False


@tool
def write_file(context: ToolContext, path: str, content: str) -> dict[str, Any]:
    """Write a text file in the project (UTF-8), replacing it if it exists.

    Parent directories are created as needed.

    Args:
        context: Injected by boonb (project root, limits); not sent by the model.
        path: File to write, relative to the project root.
        content: The complete new content of the file.

    """
    target = resolve_inside(context, path)
    # Check the parent too before creating anything: it is what mkdir will build.
    resolve_inside(context, os.path.dirname(path) or ".")
    if is_private(context, target):
        raise ToolError(
            f"{path!r} is inside {', '.join(sorted(PRIVATE_DIRS))}, which file "
            "tools do not write; choose another path"
        )
    if target.is_dir():
        raise ToolError(f"{path!r} is a directory; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8")
    target.write_bytes(data)
    return {"path": relative(context, target), "bytes_written": len(data)}


FILE_TOOLS = [list_files, read_file, grep, write_file]
