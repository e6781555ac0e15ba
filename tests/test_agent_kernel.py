"""%%agent in a real kernel, driven through a kernel client as Jupyter does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.kernels import Kernel

pytestmark = pytest.mark.slow


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.csv").write_text("a,b\n1,2\n")
    k = Kernel(project)
    yield k
    k.stop()


def test_agent_cell_answers_in_the_chat_view_and_its_traces_are_in_the_database(
    kernel: Kernel, tmp_path: Path
) -> None:
    out = kernel.execute("%load_ext boonb")
    assert not out["error"]
    out = kernel.execute(
        "from boonb.runtime import get_runtime\nfrom boonb.sim import Rule\n"
        "get_runtime().simulator().add_rule(Rule('csv', tool_calls=["
        "{'name': 'read_file', 'arguments': {'path': 'data.csv'}}]))"
    )
    assert "built-in simulator" in "".join(out["stdout"])  # said once, when it starts
    out = kernel.execute("%%agent --max-turns 4\nWhat is in the csv file?")
    assert not out["error"], out
    # A kernel shows the chat view (tests/test_widgets_chat.py): no second copy as text.
    assert "[simulator]" not in "".join(out["stdout"])
    (summary,) = out["result"]
    assert "2 turns · 1 tool call ·" in summary and "cache" in summary
    assert "built-in simulator" not in "".join(out["stdout"] + out["stderr"])

    out = kernel.execute("import boonb\nprint(boonb.traces().count('*').fetchall()[0][0])")
    assert "".join(out["stdout"]).strip() == "3", out
    kernel.stop()
    con = duckdb.connect(str(tmp_path / "project" / ".boonb" / "boonb.duckdb"))
    rows = con.execute(
        "SELECT kind, tool_name, outcome FROM tool_traces ORDER BY started_at"
    ).fetchall()
    assert rows == [
        ("model", "sim-chat", "success"),
        ("tool", "read_file", "success"),
        ("model", "sim-chat", "success"),
    ]


def test_agent_cell_with_bad_options_explains_without_a_traceback(kernel: Kernel) -> None:
    kernel.execute("%load_ext boonb")
    out = kernel.execute("%%agent --tools nope\nhello")
    assert "boonb:" in "".join(out["stderr"]) and "nope" in "".join(out["stderr"])
    assert not out["error"]
    out = kernel.execute("%%agent --no-wait --tools none\nhello")
    (handle,) = out["result"]
    assert handle.startswith("<AgentHandle chat=")
