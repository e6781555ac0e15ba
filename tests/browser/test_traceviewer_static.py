"""The trace viewer's static HTML (what GitHub and nbviewer show) in a real JupyterLab.

The HTML is displayed as a plain ``text/html`` output, as a page without a widget manager
renders a saved notebook: the tree of calls must read as a tree, in both themes.
"""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import ARTIFACTS_DIR
from .lab_page import NotebookFactory
from .test_traceviewer import SETUP

SEED = """
child = uuid.uuid4()
first = add(model(1, 0, latency_ms=900))
helper = add(trace(1, 1, name="ask_helper", latency_ms=4200, parent_id=first.id))
add(TraceRecord(
    id=uuid.uuid4(), session_id=session, chat_id=child, turn_number=1, kind="model",
    tool_name="sim-helper", parent_id=helper.id, root_id=chat, tokens_used=800,
    started_at=T0 + timedelta(seconds=2), latency_ms=700.0,
))
add(trace(1, 3, name="read_file", latency_ms=120, parent_id=first.id, outcome="error",
          error="no such file"))
add(model(2, 10, latency_ms=650))
store.writer.flush()
from IPython.display import HTML
"""


def test_static_html_shows_the_calls_as_a_nested_tree_in_both_themes(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("static.ipynb")
    nb.run_cell(SETUP)
    nb.run_cell(SEED + "\n_ = None")
    out = nb.run_cell("HTML(TraceViewer(chat).static()[1])")
    tree = out.locator(".boonb-traces-tree")
    expect(tree).to_be_visible()
    # The child chat's model call sits in the tool call's list, inside the model call's.
    inner = tree.locator("li li li", has_text="sim-helper")
    expect(inner).to_have_count(1)
    expect(tree.locator("li li", has_text="read_file")).to_contain_text("error")
    assert tree.locator(":scope > ul > li").count() == 2  # the two turns' model calls
    left = [
        tree.locator("li", has_text=name).last.bounding_box()
        for name in ("sim-model", "ask_helper", "sim-helper")
    ]
    xs = [box["x"] for box in left if box is not None]
    assert len(xs) == 3 and xs[0] < xs[1] < xs[2]  # indented one level each
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        out.screenshot(path=ARTIFACTS_DIR / f"traceviewer-static-{theme}.png")
        nb.screenshot(f"traceviewer-static-{theme}")
