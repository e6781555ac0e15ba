"""Project file tools on a real temporary project, including every way out of the root."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from boonb.agent.tools.builtins import grep, list_files, read_file, write_file
from boonb.agent.tools.builtins.files import MAX_ENTRIES, MAX_MATCHES
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.errors import PathOutsideProject, ToolArgumentError, ToolError
from boonb.agent.tools.registry import Tool


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the project holding a secret the tools must never reach."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("top secret\n")
    return directory


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "README.md").write_text("# Demo\nhello world\n")
    (root / "src" / "main.py").write_text("import os\n\ndef main():\n    print('hello')\n")
    (root / "src" / "pkg" / "util.py").write_text("HELLO = 1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hello from git\n")
    (root / ".boonb").mkdir()
    (root / ".boonb" / "store.txt").write_text("hello from boonb\n")
    return root


def call(t: Tool, project: Path, **arguments: Any) -> Any:
    return asyncio.run(t.invoke(arguments, ToolContext(project_root=project)))


def test_list_files_shows_names_sizes_and_dir_markers(project: Path) -> None:
    result = call(list_files, project)
    assert result["path"] == "."
    assert result["entries"] == [
        {"name": "README.md", "size": 19},
        {"name": "src/"},
    ]
    assert result["truncated"] is False


def test_list_files_recursive_with_pattern_skips_private_dirs(project: Path) -> None:
    result = call(list_files, project, recursive=True, pattern="*.py")
    assert [e["name"] for e in result["entries"]] == ["src/main.py", "src/pkg/util.py"]
    everything = call(list_files, project, recursive=True)
    names = [e["name"] for e in everything["entries"]]
    assert not any(".git" in n or ".boonb" in n for n in names)
    assert "src/pkg/" in names


def test_list_files_of_a_subdirectory_gives_root_relative_paths(project: Path) -> None:
    result = call(list_files, project, path="src/pkg")
    assert result["path"] == "src/pkg"
    assert result["entries"] == [{"name": "src/pkg/util.py", "size": 10}]


def test_list_files_is_capped(project: Path) -> None:
    many = project / "many"
    many.mkdir()
    for i in range(MAX_ENTRIES + 5):
        (many / f"f{i:04d}.txt").write_text("")
    result = call(list_files, project, path="many")
    assert len(result["entries"]) == MAX_ENTRIES
    assert result["truncated"] is True
    assert "narrow" in result["note"]


def test_read_file_returns_lines(project: Path) -> None:
    result = call(read_file, project, path="src/main.py")
    assert result["content"] == "import os\n\ndef main():\n    print('hello')"
    assert (result["start_line"], result["end_line"], result["total_lines"]) == (1, 4, 4)
    assert result["truncated"] is False


def test_read_file_with_offset_and_limit_says_it_is_truncated(project: Path) -> None:
    (project / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    result = call(read_file, project, path="long.txt", offset=10, limit=5)
    assert result["content"].splitlines() == [f"line {i}" for i in range(11, 16)]
    assert (result["start_line"], result["end_line"], result["total_lines"]) == (11, 15, 100)
    assert result["truncated"] is True
    assert "offset=15" in result["note"]


def test_read_file_replaces_invalid_utf8(project: Path) -> None:
    (project / "latin.txt").write_bytes(b"caf\xe9\n")
    assert call(read_file, project, path="latin.txt")["content"] == "caf\ufffd"


def test_read_file_refuses_binary_files(project: Path) -> None:
    (project / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ToolError, match="'image.png' is a binary file"):
        call(read_file, project, path="image.png")


def test_read_file_missing_and_directory_are_explained(project: Path) -> None:
    with pytest.raises(ToolError, match="no such file: 'nope.txt'; use list_files"):
        call(read_file, project, path="nope.txt")
    with pytest.raises(ToolError, match="is a directory"):
        call(read_file, project, path="src")


def test_read_file_rejects_negative_offset(project: Path) -> None:
    with pytest.raises(ToolArgumentError, match="argument 'offset'"):
        call(read_file, project, path="README.md", offset=-1)


def test_grep_finds_matches_as_file_line_text(project: Path) -> None:
    result = call(grep, project, pattern="(?i)hello")
    assert result["matches"] == [
        "README.md:2:hello world",
        "src/main.py:4:    print('hello')",
        "src/pkg/util.py:1:HELLO = 1",
    ]
    assert result["truncated"] is False


def test_grep_with_glob_and_path(project: Path) -> None:
    result = call(grep, project, pattern="hello", path="src", glob="*.py")
    assert result["matches"] == ["src/main.py:4:    print('hello')"]
    assert call(grep, project, pattern="HELLO", path="src/pkg/util.py")["matches"] == [
        "src/pkg/util.py:1:HELLO = 1"
    ]


def test_grep_skips_binary_files_and_caps_matches(project: Path) -> None:
    (project / "blob.bin").write_bytes(b"hello\x00hello")
    (project / "many.txt").write_text("hit\n" * (MAX_MATCHES + 10))
    result = call(grep, project, pattern="hit|hello")
    assert not any(m.startswith("blob.bin") for m in result["matches"])
    assert len(result["matches"]) == MAX_MATCHES
    assert result["truncated"] is True


def test_grep_invalid_regex_is_an_argument_error(project: Path) -> None:
    with pytest.raises(ToolArgumentError, match="argument 'pattern': not a valid regular"):
        call(grep, project, pattern="(unclosed")


def test_write_file_creates_parents_and_returns_bytes_written(project: Path) -> None:
    result = call(write_file, project, path="notes/2026/todo.md", content="café\n")
    assert result == {"path": "notes/2026/todo.md", "bytes_written": 6}
    assert (project / "notes" / "2026" / "todo.md").read_text(encoding="utf-8") == "café\n"


def test_write_file_replaces_and_allows_inner_dotdot(project: Path) -> None:
    call(write_file, project, path="src/../README.md", content="new")
    assert (project / "README.md").read_text() == "new"


def test_write_file_refuses_private_dirs(project: Path) -> None:
    with pytest.raises(ToolError, match="do not write"):
        call(write_file, project, path=".boonb/store.txt", content="x")
    assert (project / ".boonb" / "store.txt").read_text() == "hello from boonb\n"


ESCAPES = ["../outside/secret.txt", "a/../../outside/secret.txt", "src/../../outside/x"]


@pytest.mark.parametrize("path", ESCAPES)
def test_dotdot_escapes_are_refused_for_reads(project: Path, outside: Path, path: str) -> None:
    with pytest.raises(PathOutsideProject) as info:
        call(read_file, project, path=path)
    assert repr(path) in str(info.value)
    assert "resolves outside the project root" in str(info.value)


@pytest.mark.parametrize("path", ESCAPES)
def test_dotdot_escapes_are_refused_for_writes(project: Path, outside: Path, path: str) -> None:
    with pytest.raises(PathOutsideProject):
        call(write_file, project, path=path, content="pwned")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret\n"


@pytest.mark.parametrize("t", [read_file, list_files, grep])
def test_absolute_paths_are_refused(project: Path, t: Tool) -> None:
    args: dict[str, Any] = {"path": "/etc/passwd"}
    if t is grep:
        args["pattern"] = "root"
    with pytest.raises(PathOutsideProject, match="'/etc/passwd' is not allowed: absolute"):
        call(t, project, **args)


def test_absolute_path_inside_the_root_is_still_refused(project: Path) -> None:
    with pytest.raises(PathOutsideProject, match="absolute"):
        call(write_file, project, path=str(project / "x.txt"), content="x")
    assert not (project / "x.txt").exists()


def test_symlinked_file_pointing_outside_is_refused(project: Path, outside: Path) -> None:
    (project / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathOutsideProject, match="'link.txt'"):
        call(read_file, project, path="link.txt")
    with pytest.raises(PathOutsideProject, match="'link.txt'"):
        call(write_file, project, path="link.txt", content="pwned")
    assert (outside / "secret.txt").read_text() == "top secret\n"


def test_dangling_symlink_pointing_outside_is_refused_for_write(
    project: Path, outside: Path
) -> None:
    (project / "new.txt").symlink_to(outside / "created.txt")
    with pytest.raises(PathOutsideProject):
        call(write_file, project, path="new.txt", content="pwned")
    assert not (outside / "created.txt").exists()


def test_symlinked_directory_pointing_outside_is_refused(project: Path, outside: Path) -> None:
    (project / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideProject, match="'data/secret.txt'"):
        call(read_file, project, path="data/secret.txt")
    with pytest.raises(PathOutsideProject):
        call(list_files, project, path="data")
    with pytest.raises(PathOutsideProject):
        call(write_file, project, path="data/sub/new.txt", content="pwned")
    with pytest.raises(PathOutsideProject):
        call(grep, project, pattern="secret", path="data")
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_walks_do_not_follow_symlinks_outside(project: Path, outside: Path) -> None:
    (project / "data").symlink_to(outside, target_is_directory=True)
    (project / "secret_link.txt").symlink_to(outside / "secret.txt")
    listing = call(list_files, project, recursive=True)
    names = [e["name"] for e in listing["entries"]]
    assert "data" in names and not any(n.startswith("data/") for n in names)
    assert {"name": "secret_link.txt", "symlink": True} in listing["entries"]
    assert call(grep, project, pattern="top secret")["matches"] == []


def test_symlink_inside_the_root_is_allowed(project: Path) -> None:
    (project / "alias.py").symlink_to(project / "src" / "main.py")
    assert call(read_file, project, path="alias.py")["content"].startswith("import os")
