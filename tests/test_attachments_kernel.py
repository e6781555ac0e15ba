"""Images from a notebook, in real kernels: figures, ``--image``, restart and resume."""

from __future__ import annotations

import ast
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from tests.kernels import Kernel

pytestmark = pytest.mark.slow

SENT_IMAGES = """
import base64, hashlib
from boonb.runtime import get_runtime
_request = get_runtime().simulator().requests[-1]
print([
    hashlib.sha256(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])).hexdigest()
    for message in _request["messages"] if isinstance(message["content"], list)
    for part in message["content"] if part["type"] == "image_url"
])
"""

FIGURE = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(3, 2), dpi=40)
ax.plot([0, 1, 2], [2, 0, 1])
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    out = io.BytesIO()
    Image.new("RGB", (90, 60), "purple").save(out, "PNG")
    (path / "plot.png").write_bytes(out.getvalue())
    return path


@pytest.fixture
def kernel(project: Path) -> Iterator[Kernel]:
    k = Kernel(project)
    k.execute("%load_ext boonb")
    yield k
    k.stop()


def sent(kernel: Kernel) -> list[str]:
    out = kernel.execute(SENT_IMAGES)
    assert not out["error"], out
    # Printed text can arrive in several stream messages (the newline on its own).
    return ast.literal_eval("".join(out["stdout"]).strip().splitlines()[-1])


def stored(project: Path) -> dict[str, str]:
    """Stored image parts: name -> sha256 (the kernel must have let go of the file)."""
    con = duckdb.connect(str(project / ".boonb" / "boonb.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT json_extract_string(data, '$.name'), sha256 FROM message_parts "
            "WHERE type = 'image'"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_start_with_a_figure_and_agent_image_magic(kernel: Kernel, project: Path) -> None:
    assert not kernel.execute(FIGURE)["error"]
    out = kernel.execute(
        "import boonb\nresult = boonb.start(boonb.new_agent(tools=[]), 'what is this?', "
        "images=[fig])\nprint(result.content)"
    )
    assert not out["error"], out
    assert "with 1 image" in "".join(out["stdout"])
    [figure_hash] = sent(kernel)
    png = next((project / ".boonb" / "attachments").glob(f"{figure_hash}.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = kernel.execute("%%agent --tools none --image fig --image plot.png\ncompare these")
    assert not out["error"] and not out["stderr"], out
    plot_hash = hashlib.sha256((project / "plot.png").read_bytes()).hexdigest()
    assert sent(kernel)[-2:] == [figure_hash, plot_hash]
    kernel.execute("from boonb.api import wait_stored; wait_stored()")
    kernel.stop()
    names = stored(project)
    assert names["fig"] == figure_hash and names["plot.png"] == plot_hash


def test_bad_image_option_explains_and_sends_nothing(kernel: Kernel, project: Path) -> None:
    (project / "report.png").write_bytes(b"%PDF-1.4\n%%EOF\n")
    out = kernel.execute("%%agent --tools none --image report.png\nread this")
    text = "".join(out["stderr"] + out["stdout"])
    assert "'report.png' is a PDF document" in text
    assert not out["error"]  # a message, not a traceback
    out = kernel.execute("%%agent --tools none --image missing.png\nread this")
    assert "no file 'missing.png'" in "".join(out["stderr"] + out["stdout"])
    out = kernel.execute(
        "from boonb.runtime import get_runtime\nprint(len(get_runtime().simulator().requests))"
    )
    assert out["stdout"] == ["0\n"]
    assert not (project / ".boonb" / "attachments").exists()


def test_images_are_still_sent_after_restart_and_resume(project: Path) -> None:
    first = Kernel(project)
    try:
        first.execute("%load_ext boonb")
        out = first.execute("%%agent --tools none --image plot.png\nwhat colour is it?")
        assert not out["error"], out
    finally:
        first.stop()
    con = duckdb.connect(str(project / ".boonb" / "boonb.duckdb"), read_only=True)
    try:
        [(chat_id,)] = con.execute("SELECT DISTINCT chat_id FROM agent_sessions").fetchall()
    finally:
        con.close()

    second = Kernel(project)
    try:
        second.execute("%load_ext boonb")
        out = second.execute(f"%agent resume {chat_id}")
        assert not out["error"], out
        out = second.execute(f"%%agent --chat {chat_id}\nand what shape is it?")
        assert not out["error"], out
        plot_hash = hashlib.sha256((project / "plot.png").read_bytes()).hexdigest()
        assert sent(second) == [plot_hash]
    finally:
        second.stop()


def test_image_option_repeats_and_prefers_notebook_variables() -> None:
    from boonb.magics.agent import AgentPrompt, image_sources

    options = AgentPrompt.parse("--image fig --image plots/a.png --tools none")
    assert options.image == ["fig", "plots/a.png"]
    assert "[--image PATH|VAR ...]" in AgentPrompt.usage()

    class Shell:
        user_ns = {"fig": "the figure", "plots": "not used"}

    assert image_sources(options.image, Shell()) == {
        "fig": "the figure",
        "plots/a.png": "plots/a.png",
    }


def test_image_option_for_a_model_that_cannot_see_stores_nothing(
    kernel: Kernel, project: Path
) -> None:
    assert not kernel.execute("%boonb config vision=false")["error"]
    out = kernel.execute("%%agent --tools none --image plot.png\nwhat is this?")
    assert "cannot read images" in "".join(out["stderr"] + out["stdout"])
    assert not out["error"]
    (project / "cut.png").write_bytes((project / "plot.png").read_bytes()[:60])
    assert not kernel.execute("%boonb config vision=true")["error"]
    out = kernel.execute("%%agent --tools none --image plot.png --image cut.png\nthese two")
    assert "'cut.png'" in "".join(out["stderr"] + out["stdout"])
    assert not (project / ".boonb" / "attachments").exists()
