"""The simulator as a new user meets it: the README's first example in a real kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.kernels import Kernel

pytestmark = pytest.mark.slow

README_CELL = (
    '%%agent --max-turns 6\nWhich files in this project mention "revenue"? Summarise what they say.'
)
NOTICE = "no API key is set, so agents use the built-in simulator"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "report.md").write_text("# Q3 review\nRevenue grew 12% to 4.1M.\nCosts were flat.\n")
    (root / "sales.csv").write_text("region,quarter,revenue\nNorth,Q1,24000\n")
    (root / "notes.txt").write_text("Quarterly review on Friday.\n")
    return root


@pytest.fixture
def kernel(project: Path) -> Iterator[Kernel]:
    k = Kernel(project)
    yield k
    k.stop()


def _db(project: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(project / ".boonb" / "boonb.duckdb"), read_only=True)


def test_readme_first_example_greps_reads_the_files_and_quotes_them(
    kernel: Kernel, project: Path
) -> None:
    assert not kernel.execute("%load_ext boonb")["error"]
    out = kernel.execute(README_CELL)
    assert not out["error"], out
    (summary,) = out["result"]
    assert "3 turns · 3 tool calls ·" in summary
    out = kernel.execute(
        "import boonb\n"
        "print(boonb.traces().filter(\"kind = 'tool'\")"
        ".project(\"tool_name, input->>'$.path'\").order('2').fetchall())"
    )
    assert "".join(out["stdout"]).strip() == (
        "[('read_file', 'report.md'), ('read_file', 'sales.csv'), ('grep', None)]"
    ), out
    kernel.stop()
    with _db(project) as con:
        (answer,) = con.execute(
            "SELECT p.text FROM messages m JOIN message_parts p ON p.message_id = m.id "
            "WHERE m.role = 'assistant' AND p.type = 'text' ORDER BY m.turn_number DESC LIMIT 1"
        ).fetchone()
    assert answer.startswith('[simulator] 2 lines in 2 files mention "revenue"')
    assert '- report.md (3 lines): "Revenue grew 12% to 4.1M."' in answer
    assert '- sales.csv (2 lines): "region,quarter,revenue"' in answer


def test_the_simulator_notice_arrives_once_on_stdout_over_two_agent_cells(
    kernel: Kernel,
) -> None:
    outputs = [kernel.execute("%load_ext boonb")]
    outputs.append(kernel.execute(README_CELL))
    outputs.append(kernel.execute("%%agent --max-turns 6\nAnd which mention 'costs'?"))
    assert not any(out["error"] for out in outputs), outputs
    stdout = "".join(text for out in outputs for text in out["stdout"])
    stderr = "".join(text for out in outputs for text in out["stderr"])
    assert stdout.count(NOTICE) == 1, outputs
    assert NOTICE not in stderr
