"""The trace viewer in a real JupyterLab: grouping, colours, details, paging, live rows, theme.

Traces are seeded straight into the kernel's store (or published on its bus), so each test
controls exactly what the view must show.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Locator, expect

from .conftest import ARTIFACTS_DIR
from .lab_page import Notebook, NotebookFactory, drop_first_request

SETUP = """
import uuid
from datetime import UTC, datetime, timedelta
from boonb.frames import (
    CacheSegment, ModelCallComplete, ToolTraceComplete, ToolTraceStart, TraceRecord,
)
from boonb.runtime import get_runtime
from boonb.store import projections
from boonb.widgets import TraceViewer
from pydantic import TypeAdapter

rt = get_runtime()
store = rt.store
T0 = datetime(2026, 1, 1, tzinfo=UTC)
chat = uuid.uuid4()
session = uuid.uuid4()

def trace(turn, seconds, *, kind="tool", name="read_file", latency_ms=100.0, **fields):
    fields.setdefault("input", {"path": "a.txt"})
    fields.setdefault("output", "ok")
    return TraceRecord(
        id=uuid.uuid4(), session_id=session, chat_id=chat, turn_number=turn, kind=kind,
        tool_name=name, started_at=T0 + timedelta(seconds=seconds), latency_ms=latency_ms,
        **fields,
    )

def model(turn, seconds, *, input_tokens=1000, cache_tokens=0, output_tokens=100, **fields):
    return trace(
        turn, seconds, kind="model", name="sim-model", input_tokens=input_tokens,
        cache_tokens=cache_tokens, cache_miss_tokens=input_tokens - cache_tokens,
        output_tokens=output_tokens, tokens_used=input_tokens + output_tokens, **fields,
    )

def projected_turns():
    \"\"\"What projections.turns() makes of the chat's stored calls, as JSON.\"\"\"
    store.writer.flush()
    calls = store.traces.chat_calls(chat)
    return TypeAdapter(list[projections.TurnTotals]).dump_python(
        projections.turns(calls), mode="json"
    )

def add(record, cache=()):
    if record.kind == "model":
        store.writer.enqueue(ModelCallComplete(trace=record, cache=list(cache)))
    else:
        store.writer.enqueue(ToolTraceComplete(trace=record))
    return record
"""

#: Row kinds in screen order ("turn:N", "model:N", "tool:N"), read from their offsets.
ROWS_IN_ORDER = """root => [...root.querySelectorAll('.tv-turn, .tv-trace')]
  .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
  .map(r => (r.classList.contains('tv-turn') ? 'turn' : r.dataset.kind) + ':' + r.dataset.turn)"""


def open_viewer(notebook: NotebookFactory, name: str, seed: str) -> tuple[Notebook, Locator]:
    nb = notebook.open(name)
    nb.run_cell(SETUP)
    nb.run_cell(seed + "\n_ = None")
    out = nb.run_cell("viewer = TraceViewer(chat)\nviewer")
    viewer = out.locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true")
    return nb, viewer


def kernel_json(nb: Notebook, expression: str) -> object:
    out = nb.run_cell(f"import json as _json\nprint(_json.dumps({expression}))")
    return json.loads(out.inner_text())


def test_traces_are_grouped_by_turn_and_turns_collapse(notebook: NotebookFactory) -> None:
    seed = """
add(model(0, 0, latency_ms=900))
add(trace(0, 1, name="list_files", latency_ms=300))
add(trace(0, 2, name="read_file", latency_ms=500))
add(model(1, 10, latency_ms=700))
add(trace(1, 11, name="grep", latency_ms=200))
"""
    nb, viewer = open_viewer(notebook, "grouping.ipynb", seed)
    expect(viewer.locator(".tv-turn")).to_have_count(2)
    assert viewer.evaluate(ROWS_IN_ORDER) == [
        "turn:0", "model:0", "tool:0", "tool:0", "turn:1", "model:1", "tool:1",
    ]  # fmt: skip
    turn0 = viewer.locator('.tv-turn[data-turn="0"]')
    expect(turn0).to_contain_text("Turn 0")
    # 2 tools; 1.1K tokens (the model call's 1000 in + 100 out); span 0 s .. 2.5 s.
    expect(turn0.locator(".tv-turn-summary")).to_have_text(" · 2 tools · 1.1K tokens · 2.5 s")
    expect(viewer.locator('.tv-trace[data-turn="1"] .tv-badge')).to_have_text(["sim-model", "grep"])

    turn0.click()
    expect(turn0).to_have_attribute("aria-expanded", "false")
    expect(viewer.locator('.tv-trace[data-turn="0"]')).to_have_count(0)
    expect(viewer.locator('.tv-trace[data-turn="1"]')).to_have_count(2)
    turn0.click()
    expect(viewer.locator('.tv-trace[data-turn="0"]')).to_have_count(3)

    # A refreshed page asks the kernel again and shows the same rows.
    nb.reload()
    viewer = nb.output(2).locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true")
    expect(viewer.locator(".tv-trace")).to_have_count(5)


def test_a_view_whose_first_page_request_is_lost_asks_again_and_loads(
    notebook: NotebookFactory,
) -> None:
    seed = """
add(model(0, 0, latency_ms=900))
add(trace(0, 1, name="list_files", latency_ms=300))
"""
    nb, viewer = open_viewer(notebook, "lost-request.ipynb", seed)
    nb.page.add_init_script(drop_first_request("page"))
    nb.reload()
    viewer = nb.output(2).locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=15_000)
    assert nb.page.evaluate("() => window.__dropped === true")
    expect(viewer.locator(".tv-trace .tv-badge")).to_have_text(["sim-model", "list_files"])


def test_latency_bars_are_coloured_and_placed_on_the_turns_waterfall(
    notebook: NotebookFactory,
) -> None:
    seed = """
add(trace(0, 0, name="fast", latency_ms=200))
add(trace(0, 1, name="medium", latency_ms=2000))
add(trace(0, 2, name="slow", latency_ms=6000))
"""
    _nb, viewer = open_viewer(notebook, "latency.ipynb", seed)
    for latency, cls, text in [
        ("200", "latency-fast", "200 ms"),
        ("2000", "latency-medium", "2.0 s"),
        ("6000", "latency-slow", "6.0 s"),
    ]:
        row = viewer.locator(f'.tv-trace[data-latency-ms="{latency}"]')
        expect(row.locator(".tv-latency-bar")).to_have_class(re.compile(rf"\b{cls}\b"))
        expect(row.locator(".tv-latency-text")).to_have_text(text)
    colours = {
        name: viewer.locator(
            f'.tv-trace:has(.tv-badge:text-is("{name}")) .tv-latency-bar'
        ).evaluate("el => getComputedStyle(el).backgroundColor")
        for name in ("fast", "medium", "slow")
    }
    assert len(set(colours.values())) == 3, colours

    # The turn runs from 0 s to 8 s (slow: 2 s + 6 s): each bar starts where its call
    # started in the turn and is as long as the call.
    expect(viewer.locator('.tv-turn[data-turn="0"]')).to_have_attribute("data-span-ms", "8000")
    assert _bar(viewer, "slow") == _approx((0.25, 1.0))
    assert _bar(viewer, "medium") == _approx((0.125, 0.375))
    assert _bar(viewer, "fast")[0] == _approx(0.0)


def _bar(viewer: Locator, name: str) -> tuple[float, float]:
    """Where a call's latency bar starts and ends, as shares of its track.

    Read from the bar's style (where it is going), not its box, which slides there.
    """
    row = viewer.locator(f'.tv-trace:has(.tv-badge:text-is("{name}"))')
    start, width = row.locator(".tv-latency-bar").evaluate(
        "el => [parseFloat(el.style.marginLeft) / 100, parseFloat(el.style.width) / 100]"
    )
    return start, start + width


def _approx(value: object) -> object:
    return pytest.approx(value, abs=0.02)


def test_turn_figures_are_the_kernels_and_tool_calls_nest_under_their_model_call(
    notebook: NotebookFactory,
) -> None:
    # Turn 0: a model call, then two tool calls it asked for, run side by side; 60 more
    # in turn 1, past the first page, so the view holds only part of that turn.
    seed = """
asker = add(model(0, 0, latency_ms=900))
add(trace(0, 1, name="list_files", latency_ms=3000, parent_id=asker.id))
add(trace(0, 1.5, name="grep", latency_ms=1000, parent_id=asker.id, outcome="error",
          error="no match"))
asker2 = add(model(1, 10, input_tokens=2000, cache_tokens=500))
for i in range(60):
    add(trace(1, 11 + i, name=f"tool_{i:02d}", parent_id=asker2.id))
"""
    nb, viewer = open_viewer(notebook, "nesting.ipynb", seed)
    figures = kernel_json(nb, "projected_turns()")
    assert isinstance(figures, list) and len(figures) == 2
    for turn in figures:
        row = viewer.locator(f'.tv-turn[data-turn="{turn["turn_number"]}"]')
        for attribute, key in [
            ("data-model-calls", "model_calls"),
            ("data-tools", "tool_calls"),
            ("data-tokens", "tokens_used"),
            ("data-errors", "errors"),
        ]:
            expect(row).to_have_attribute(attribute, str(turn[key]))
        expect(row).to_have_attribute("data-latency-ms", _js_number(turn["latency_ms"]))
    turn1 = viewer.locator('.tv-turn[data-turn="1"]')
    expect(turn1.locator(".tv-turn-summary")).to_have_text(
        re.compile(r"^ · 60 tools · 2.1K tokens · ")
    )  # all of turn 1, though the view holds only its first rows
    assert int(viewer.get_attribute("data-loaded") or 0) < 63

    # The tool calls hang under their model call, indented, with a connector.
    asker = viewer.locator('.tv-trace[data-turn="0"][data-kind="model"]')
    asker_id = asker.get_attribute("data-trace-id")
    expect(asker).to_have_attribute("data-depth", "0")
    tools = viewer.locator('.tv-trace[data-turn="0"][data-kind="tool"]')
    expect(tools).to_have_count(2)
    for i in range(2):
        expect(tools.nth(i)).to_have_attribute("data-depth", "1")
        expect(tools.nth(i)).to_have_attribute("data-parent-id", asker_id or "")
        expect(tools.nth(i)).to_have_attribute("aria-level", "3")
    assert _badge_left(viewer, "list_files") > _badge_left(viewer, "sim-model") + 10
    elbows = viewer.locator('.tv-trace[data-turn="0"] .tv-elbow')
    expect(elbows).to_have_count(2)
    expect(viewer.locator('.tv-trace:has(.tv-badge:text-is("grep")) .tv-elbow')).to_have_class(
        re.compile(r"\bis-last\b")
    )
    line = elbows.first.evaluate(
        "el => [getComputedStyle(el, '::before').borderLeftStyle,"
        " getComputedStyle(el, '::after').borderTopStyle, el.getBoundingClientRect().width]"
    )
    assert line[:2] == ["solid", "solid"] and line[2] > 0, line
    # Side by side on the turn's waterfall: grep (1.5 s .. 2.5 s) within list_files (1 .. 4 s).
    (list_start, list_end), (grep_start, grep_end) = (
        _bar(viewer, "list_files"),
        _bar(viewer, "grep"),
    )
    assert list_start < grep_start < grep_end < list_end
    assert list_start == _approx(0.25) and list_end == _approx(1.0)

    # A tool call arriving live lands under its model call, after the calls there, and the
    # turn's figures are the kernel's again, the new call counted in.
    nb.run_cell(
        "late = trace(0, 2, name='fetch_url', latency_ms=500.0, parent_id=asker.id)\n"
        "rt.bus.publish(ToolTraceStart(trace_id=late.id, session_id=session, chat_id=chat,\n"
        "    turn_number=0, tool_name='fetch_url', parent_id=asker.id,\n"
        "    started_at=late.started_at))"
    )
    fetch = viewer.locator('.tv-trace:has(.tv-badge:text-is("fetch_url"))')
    expect(fetch).to_have_class(re.compile(r"\bis-running\b"))
    expect(fetch).to_have_attribute("data-depth", "1")
    nb.run_cell("rt.bus.publish(ToolTraceComplete(trace=late))")
    expect(fetch).not_to_have_class(re.compile(r"\bis-running\b"))
    turn0 = viewer.locator('.tv-turn[data-turn="0"]')
    expect(turn0).to_have_attribute("data-tools", "3")
    figures = kernel_json(nb, "projected_turns()")
    assert isinstance(figures, list)
    expect(turn0).to_have_attribute("data-tokens", str(figures[0]["tokens_used"]))
    expect(turn0).to_have_attribute("data-latency-ms", _js_number(figures[0]["latency_ms"]))
    assert viewer.evaluate(ROWS_IN_ORDER)[:5] == [
        "turn:0", "model:0", "tool:0", "tool:0", "tool:0",
    ]  # fmt: skip
    expect(viewer.locator('.tv-trace[data-turn="0"] .tv-elbow.is-last')).to_have_count(1)
    expect(fetch.locator(".tv-elbow")).to_have_class(re.compile(r"\bis-last\b"))
    _review_shots(nb, viewer, "nesting")

    # A call of a turn the kernel has not read comes without figures: the view asks for them.
    turn1.click()  # collapsed, so that turn 5 is in view
    nb.run_cell("rt.bus.publish(ToolTraceComplete(trace=trace(5, 100, name='later')))")
    later = viewer.locator('.tv-turn[data-turn="5"]')
    expect(later).to_have_attribute("data-tools", "1")
    expect(later.locator(".tv-turn-summary")).to_have_text(" · 1 tool · 0 tokens · 100 ms")


def _badge_left(viewer: Locator, name: str) -> float:
    left: float = viewer.locator(f'.tv-badge:text-is("{name}")').first.evaluate(
        "el => el.getBoundingClientRect().left"
    )
    return left


def _js_number(value: float) -> str:
    """A number as JavaScript's ``String()`` writes it (2700.0 -> "2700")."""
    return str(int(value)) if float(value).is_integer() else repr(value)


#: Where the screenshots of this view are kept for review (see the issue's view checklist).
SHOTS_DIR = Path("/work/notes/shots")


def _review_shots(nb: Notebook, viewer: Locator, name: str) -> None:
    """The viewer in the light and the dark theme, into the artifacts and the review folder."""
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        viewer.scroll_into_view_if_needed()
        path = ARTIFACTS_DIR / f"traceviewer-{name}-{theme}.png"
        viewer.screenshot(path=path)
        _keep_for_review(path)


def _keep_for_review(path: Path) -> None:
    if SHOTS_DIR.is_dir():
        shutil.copy(path, SHOTS_DIR / path.name)


def test_expanding_a_row_shows_its_json_and_error_without_inline_images(
    notebook: NotebookFactory,
) -> None:
    seed = """
image = "data:image/png;base64," + "iVBORw0KGgo" * 2000
raw = "iVBORw0KGgoAAAANSUhEUgAA" * 20
add(trace(0, 0, name="read_file", input={"path": "notes.txt", "n": 3, "flag": True},
          output={"lines": ["alpha", "beta"], "preview": image, "raw": raw, "none": None}))
add(trace(0, 1, name="grep", outcome="error", error="grep: pattern too long",
          input={"pattern": "x" * 9000}, output=None))
"""
    _nb, viewer = open_viewer(notebook, "expand.ipynb", seed)
    row = viewer.locator('.tv-trace:has(.tv-badge:text-is("read_file"))')
    trace_id = row.get_attribute("data-trace-id")
    row.click()
    expect(row).to_have_attribute("aria-expanded", "true")
    detail = viewer.locator(f'.tv-detail[data-detail-for="{trace_id}"]')
    expect(detail).to_be_visible()
    json_input = detail.locator(".tv-json-input")
    assert json.loads(json_input.inner_text()) == {"path": "notes.txt", "n": 3, "flag": True}
    expect(json_input.locator(".json-key")).to_have_text(['"path"', '"n"', '"flag"'])
    expect(json_input.locator(".json-number")).to_have_text("3")
    expect(json_input.locator(".json-boolean")).to_have_text("true")
    output = detail.locator(".tv-json-output")
    expect(output).to_contain_text('"alpha"')
    expect(output.locator(".json-null")).to_have_text("null")
    expect(output).to_contain_text("image/png data URI")
    expect(output).to_contain_text("base64 data, 360 B")
    assert "iVBORw0KGgo" not in output.inner_text()
    expect(detail.locator("img")).to_have_count(0)

    # The error row: red marker, the message, and a long payload cut with "show more".
    failed = viewer.locator(".tv-trace.is-error")
    expect(failed).to_have_count(1)
    failed.click()
    failed_id = failed.get_attribute("data-trace-id")
    failed_detail = viewer.locator(f'.tv-detail[data-detail-for="{failed_id}"]')
    expect(failed_detail.locator(".tv-error-message")).to_have_text("grep: pattern too long")
    short = len(failed_detail.locator(".tv-json-input").inner_text())
    assert short < 6000
    failed_detail.locator(".tv-show-more").click()
    expect(failed_detail.locator(".tv-show-more")).to_have_text("show less")
    assert len(failed_detail.locator(".tv-json-input").inner_text()) > 9000


def test_keyboard_moves_the_selection_and_expands_and_collapses(
    notebook: NotebookFactory,
) -> None:
    seed = """
add(model(0, 0))
add(trace(0, 1, name="list_files"))
add(model(1, 10))
"""
    _nb, viewer = open_viewer(notebook, "keys.ipynb", seed)
    tree = viewer.locator(".tv-scroller")
    tree.focus()
    tree.press("ArrowDown")  # turn 0
    tree.press("ArrowDown")  # its model call
    tree.press("ArrowDown")  # list_files
    selected = viewer.locator(".tv-row.is-selected")
    expect(selected.locator(".tv-badge")).to_have_text("list_files")
    tree.press("Enter")
    expect(viewer.locator(".tv-detail")).to_have_count(1)
    tree.press("ArrowLeft")
    expect(viewer.locator(".tv-detail")).to_have_count(0)
    tree.press("ArrowLeft")  # a collapsed trace: up to its turn
    expect(selected).to_have_attribute("data-turn", "0")
    expect(selected).to_have_class(re.compile(r"\btv-turn\b"))
    tree.press("ArrowLeft")  # collapse the turn
    expect(viewer.locator('.tv-trace[data-turn="0"]')).to_have_count(0)
    tree.press("ArrowRight")
    expect(viewer.locator('.tv-trace[data-turn="0"]')).to_have_count(2)


def test_scrolling_to_the_end_loads_the_next_pages(notebook: NotebookFactory) -> None:
    seed = """
for i in range(320):
    add(trace(i // 10, i, name=f"tool_{i:03d}"))
"""
    _nb, viewer = open_viewer(notebook, "paging.ipynb", seed)
    # A first page of 50 and nothing more until the user scrolls; then pages of 200.
    expect(viewer).to_have_attribute("data-loaded", "50")
    expect(viewer).to_have_attribute("data-has-more", "true")
    scroller = viewer.locator(".tv-scroller")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(viewer).to_have_attribute("data-loaded", "250")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(viewer).to_have_attribute("data-loaded", "320")
    expect(viewer).to_have_attribute("data-has-more", "false")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last_row = """root => [...root.querySelectorAll('.tv-trace')]
      .sort((a, b) => parseFloat(b.style.top) - parseFloat(a.style.top))[0]
      .querySelector('.tv-badge').textContent"""
    viewer.page.wait_for_function(
        f"el => ({last_row})(el) === 'tool_319'", arg=viewer.element_handle()
    )
    # Virtualised: only the window of rows (plus overscan) is in the DOM.
    assert viewer.locator(".tv-row").count() < 50


def test_a_trace_arriving_while_the_view_is_open_appears_in_place(
    notebook: NotebookFactory,
) -> None:
    seed = "add(model(0, 0, input_tokens=1000, cache_tokens=0))"
    nb, viewer = open_viewer(notebook, "live.ipynb", seed)
    expect(viewer.locator(".tv-footer .tv-totals")).to_have_attribute("data-traces", "1")
    nb.run_cell(
        "live = trace(0, 5, name='fetch_url', latency_ms=1500.0)\n"
        "rt.bus.publish(ToolTraceStart(trace_id=live.id, session_id=session, chat_id=chat,\n"
        "    turn_number=0, tool_name='fetch_url', input={'url': 'x'}, started_at=live.started_at))"
    )
    row = viewer.locator('.tv-trace:has(.tv-badge:text-is("fetch_url"))')
    expect(row).to_have_class(re.compile(r"\bis-running\b"))
    expect(row.locator(".tv-latency-text")).to_have_text("running…")
    # The runtime's writer is subscribed to the bus, so publishing also stores the row.
    nb.run_cell(
        "rt.bus.publish(ToolTraceComplete(trace=live))\n"
        "rt.bus.publish(ModelCallComplete(trace=model(1, 10, input_tokens=2000, "
        "cache_tokens=1000)))"
    )
    expect(row).not_to_have_class(re.compile(r"\bis-running\b"))
    expect(row.locator(".tv-latency-text")).to_have_text("1.5 s")
    expect(row.locator(".tv-latency-bar")).to_have_class(re.compile(r"\blatency-medium\b"))
    expect(viewer.locator(".tv-trace")).to_have_count(3)
    expect(viewer.locator(".tv-turn")).to_have_count(2)
    totals = viewer.locator(".tv-footer .tv-totals")
    expect(totals).to_have_attribute("data-traces", "3")
    rate = viewer.locator(".tv-footer .tv-cache-rate")
    expect(rate).to_have_text("Cache hit rate: 33% (1K/3K tokens)")
    expect(rate).to_have_class(re.compile(r"\brate-fair\b"))


def test_footer_and_cache_bars_match_the_sql_aggregates(notebook: NotebookFactory) -> None:
    seed = """
def seg(name, tokens, hit, digest, prefix=None):
    return CacheSegment(segment=name, tokens=tokens, hit_tokens=hit, miss_tokens=tokens - hit,
                        hash=digest, prefix_hash=prefix)
add(model(0, 0, input_tokens=3000, cache_tokens=0),
    [seg("system", 1000, 0, "s"), seg("history", 2000, 0, "h0")])
add(trace(0, 1, name="list_files"))
add(model(1, 10, input_tokens=4000, cache_tokens=3000),
    [seg("system", 1000, 1000, "s", "s"), seg("history", 3000, 2000, "h1", "h0")])
add(trace(1, 11, name="grep", outcome="error", error="no match"))
add(model(2, 20, input_tokens=4500, cache_tokens=1000),
    [seg("system", 1000, 1000, "s", "s"), seg("history", 3500, 0, "h2", "changed")])
"""
    nb, viewer = open_viewer(notebook, "footer.ipynb", seed)
    # The connection is held only for the query: the store drops an idle one.
    nb.run_cell(
        "def sql(query, *params):\n"
        "    with store.db.connection() as connection:\n"
        "        return connection.execute(query, list(params)).fetchall()"
    )
    sql = kernel_json(
        nb,
        "sql('SELECT sum(cache_tokens), sum(input_tokens), count(*), "
        "count(*) FILTER (outcome = \\'error\\'), sum(tokens_used) "
        "FROM tool_traces WHERE chat_id = ?', chat)[0]",
    )
    assert isinstance(sql, list)
    cache_tokens, input_tokens, traces, errors, tokens_used = sql
    assert (cache_tokens, input_tokens) == (4000, 11500)
    rate = viewer.locator(".tv-footer .tv-cache-rate")
    expect(rate).to_have_attribute("data-cache-tokens", str(cache_tokens))
    expect(rate).to_have_attribute("data-input-tokens", str(input_tokens))
    expect(rate).to_have_text(
        f"Cache hit rate: {round(100 * cache_tokens / input_tokens)}% (4K/11.5K tokens)"
    )
    expect(rate).to_have_class(re.compile(r"\brate-fair\b"))  # 35%
    totals = viewer.locator(".tv-footer .tv-totals")
    expect(totals).to_have_attribute("data-traces", str(traces))
    expect(totals).to_have_attribute("data-errors", str(errors))
    expect(totals).to_have_attribute("data-tokens-used", str(tokens_used))

    turn_rates = kernel_json(
        nb,
        "[(t, round(100 * c / i)) for t, c, i in sql("
        '"SELECT turn_number, sum(cache_tokens), sum(input_tokens) FROM tool_traces '
        "WHERE chat_id = ? AND kind = 'model' GROUP BY 1 ORDER BY 1\", chat)]",
    )
    assert turn_rates == [[0, 0], [1, 75], [2, 22]]
    for turn, percent in turn_rates:  # type: ignore[union-attr]
        badge = viewer.locator(f'.tv-turn[data-turn="{turn}"] .tv-hit-rate')
        expect(badge).to_have_text(f"{percent}%")
    expect(viewer.locator('.tv-turn[data-turn="1"] .tv-hit-rate')).to_have_class(
        re.compile(r"\brate-good\b")
    )
    expect(viewer.locator('.tv-turn[data-turn="2"] .tv-hit-rate')).to_have_class(
        re.compile(r"\brate-poor\b")
    )
    broken = viewer.locator('.tv-turn[data-turn="2"] .tv-cache')
    expect(broken).to_have_attribute("data-broken-by", "history")
    title = broken.get_attribute("title") or ""
    assert "cache broken by: history changed" in title
    assert "system: 1K/1K cached" in title and "history: 0/3.5K cached" in title


def test_the_view_reads_well_in_the_dark_theme(notebook: NotebookFactory) -> None:
    seed = """
asker = add(model(0, 0, input_tokens=2000, cache_tokens=1500, latency_ms=800))
add(trace(0, 1, name="slow", latency_ms=6000, parent_id=asker.id))
add(trace(0, 2, name="failing", outcome="error", error="boom", parent_id=asker.id))
"""
    nb, viewer = open_viewer(notebook, "theme.ipynb", seed)
    style = """el => {
      const s = getComputedStyle(el);
      return [s.backgroundColor, s.color];
    }"""
    light_bg, light_fg = viewer.evaluate(style)
    nb.screenshot("traceviewer-light")
    viewer.screenshot(path=ARTIFACTS_DIR / "traceviewer-widget-light.png")
    _keep_for_review(ARTIFACTS_DIR / "traceviewer-widget-light.png")
    nb.set_theme("dark")
    expect(viewer).not_to_have_css("background-color", light_bg)
    dark_bg, dark_fg = viewer.evaluate(style)
    assert dark_bg != light_bg and dark_fg != light_fg
    assert _luminance(dark_bg) < _luminance(light_bg)
    assert _luminance(dark_fg) > _luminance(dark_bg)  # text stays readable
    viewer.locator(".tv-trace.is-error").click()  # show a detail in the picture too
    nb.screenshot("traceviewer-dark")
    viewer.screenshot(path=ARTIFACTS_DIR / "traceviewer-widget-dark.png")
    _keep_for_review(ARTIFACTS_DIR / "traceviewer-widget-dark.png")


def test_traces_magic_shows_a_real_agent_run(notebook: NotebookFactory) -> None:
    nb = notebook.open("magic.ipynb")
    nb.run_cell(
        "%load_ext boonb\n"
        "from boonb.runtime import get_runtime\n"
        "from boonb.sim import Rule\n"
        "get_runtime().simulator().add_rule(\n"
        "    Rule('look around', tool_calls=[{'name': 'list_files', 'arguments': {}}]))"
    )
    nb.run_cell("%%agent --max-turns 3\nPlease look around the project.")
    out = nb.run_cell("%traces")
    viewer = out.locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true")
    expect(viewer.locator('.tv-trace[data-kind="tool"] .tv-badge').first).to_have_text("list_files")
    expect(viewer.locator('.tv-trace[data-kind="model"]').first).to_be_visible()
    expect(viewer.locator(".tv-footer .tv-cache-rate")).to_contain_text("Cache hit rate:")


def _luminance(css: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _shoot(nb: Notebook, viewer: Locator, name: str) -> None:
    """The viewer in the light theme, then in the dark one (the theme is left dark)."""
    nb.set_theme("light")
    viewer.screenshot(path=ARTIFACTS_DIR / f"tv-{name}-light.png")
    nb.set_theme("dark")
    viewer.screenshot(path=ARTIFACTS_DIR / f"tv-{name}-dark.png")


def test_a_large_output_shows_its_preview_then_the_whole_value_on_expand(
    notebook: NotebookFactory,
) -> None:
    seed = """
big = "a line of a large tool output\\n" * (50 * 1024 * 1024 // 30)
add(trace(0, 0, name="read_file", output=big))
"""
    nb, viewer = open_viewer(notebook, "large.ipynb", seed)
    row = viewer.locator('.tv-trace[data-kind="tool"]')
    # Keep the kernel busy in a cell, so the detail request waits and the preview shows.
    # The click must come after the cell has started: a run request can reach the kernel after
    # the click's detail request, and the interrupt then lands outside the cell (a CI run).
    blocking = nb.run_cell(
        "import threading\nprint('blocking', flush=True)\nthreading.Event().wait()", wait=False
    )
    expect(blocking).to_contain_text("blocking")
    row.click()
    detail = viewer.locator(".tv-detail")
    expect(detail).to_have_attribute("data-detail", "loading")
    preview = detail.locator(".tv-json-output.tv-preview")
    # The text itself, not its JSON: a file reads like the file.
    expect(preview).to_contain_text(re.compile(r"^a line of a large tool output\s+a line of"))
    # 51.7 MB: the stored JSON text, its newlines escaped.
    expect(preview.locator(".tv-cut")).to_have_text(
        "… preview of 51.7 MB; loading the whole value…"
    )
    _shoot(nb, viewer, "large-preview")
    nb.interrupt()
    expect(blocking).to_contain_text("KeyboardInterrupt")
    nb.wait_idle()

    expect(detail).to_have_attribute("data-detail", "loaded", timeout=60_000)
    output = detail.locator(".tv-json-output")
    expect(output).not_to_have_class(re.compile(r"\btv-preview\b"))
    expect(detail.locator(".tv-detail-label").nth(1)).to_have_text("Output · whole value, 51.7 MB")
    rest = int(nb.kernel_value("len(big) - 4000"))
    expect(output.locator(".tv-cut")).to_have_text(f"… {rest} more characters")
    _shoot(nb, viewer, "large-expanded")
    detail.locator(".tv-show-more").click()
    expect(output.locator(".tv-cut")).to_contain_text("GET /boonb/api/traces/{id} has them all")
    assert len(output.inner_text()) > 2_000_000


def test_a_model_calls_detail_shows_the_request_as_sent_and_grows_with_it(
    notebook: NotebookFactory,
) -> None:
    nb = notebook.open("request.ipynb")
    nb.run_cell(
        "%load_ext boonb\n"
        "from boonb.runtime import get_runtime\n"
        "from boonb.sim import Rule\n"
        "get_runtime().simulator().add_rule(\n"
        "    Rule('look around', tool_calls=[{'name': 'list_files', 'arguments': {}}]))"
    )
    nb.run_cell("%%agent --max-turns 3\nPlease look around the project.")
    out = nb.run_cell("%traces")
    viewer = out.locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true")
    call = viewer.locator('.tv-trace[data-kind="model"]').first
    call.click()
    detail = viewer.locator(".tv-detail")
    expect(detail).to_have_attribute("data-detail", "loaded")
    request = detail.locator(".tv-request")
    messages = request.locator(".tv-message")
    expect(messages.first).to_have_attribute("data-role", "system")
    expect(messages.first).to_contain_text("You are an assistant running inside a Jupyter")
    expect(messages.nth(1)).to_have_attribute("data-role", "user")
    expect(messages.nth(1)).to_contain_text("Please look around the project.")
    tools = request.locator(".tv-tools")
    expect(tools.locator("summary")).to_contain_text(re.compile(r"Tools \(\d+ schemas\)"))
    _shoot(nb, viewer, "model-request")
    nb.set_theme("light")
    tools.locator("summary").click()
    expect(tools.locator(".tv-json-tools")).to_contain_text('"list_files"')
    # Local time, as the chat view shows it, not the stored UTC.
    meta = detail.locator(".tv-detail-meta")
    started = call.evaluate("el => el.dataset.traceId")
    assert started
    expect(meta).to_contain_text(re.compile(r"started \d\d:\d\d:\d\d\.\d{3}"))
    expect(meta).not_to_contain_text("+00:00")

    # The panel grows with its content, up to its cap; the rows after it move down.
    geometry = detail.evaluate(
        """el => {
          const next = [...el.parentElement.children]
            .filter(r => parseFloat(r.style.top) > parseFloat(el.style.top))
            .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))[0];
          return {
            height: el.offsetHeight, scroll: el.scrollHeight, client: el.clientHeight,
            bottom: parseFloat(el.style.top) + el.offsetHeight,
            next: next ? parseFloat(next.style.top) : null,
            tree: el.closest('.tv-scroller').clientHeight,
          };
        }"""
    )
    assert geometry["height"] > 280, geometry  # the old fixed box
    assert geometry["height"] <= 640, geometry
    if geometry["scroll"] <= 640:
        assert geometry["scroll"] <= geometry["client"] + 1, geometry  # no inner scroll
    if geometry["next"] is not None:
        assert geometry["next"] >= geometry["bottom"] - 1, geometry
    assert geometry["tree"] >= min(geometry["height"], 640), geometry
    _shoot(nb, viewer, "model-request-tools")


def test_a_turns_cache_bar_opens_its_per_segment_breakdown(notebook: NotebookFactory) -> None:
    seed = """
def seg(name, tokens, hit, digest, prefix=None):
    return CacheSegment(segment=name, tokens=tokens, hit_tokens=hit, miss_tokens=tokens - hit,
                        hash=digest, prefix_hash=prefix)
add(model(0, 0, input_tokens=3000, cache_tokens=0),
    [seg("system", 1000, 0, "s"), seg("history", 2000, 0, "h0")])
add(model(1, 10, input_tokens=4500, cache_tokens=1000),
    [seg("system", 1000, 1000, "s", "s"), seg("history", 3500, 0, "h1", "changed")])
"""
    nb, viewer = open_viewer(notebook, "breakdown.ipynb", seed)
    turn = viewer.locator('.tv-turn[data-turn="1"]')
    bar = turn.locator(".tv-cache")
    expect(bar).to_have_attribute("aria-expanded", "false")
    bar.click()
    expect(bar).to_have_attribute("aria-expanded", "true")
    expect(turn).to_have_attribute("aria-expanded", "true")  # the turn did not collapse
    panel = viewer.locator('.tv-cache-detail[data-cache-for="1"]')
    rows = panel.locator(".tv-segment")
    expect(rows).to_have_count(2)
    cells = rows.evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.textContent))"
    )
    assert cells == [["system", "1000", "1000", "0"], ["history", "3500", "0", "3500"]]
    expect(panel.locator(".tv-cache-broken")).to_have_text(
        "cache broken by: history changed since the last call"
    )
    expect(panel.locator(".tv-segment.is-broken")).to_have_attribute("data-segment", "history")
    # Below the turn, above its calls.
    assert viewer.evaluate(
        "root => [...root.querySelectorAll('.tv-turn, .tv-trace, .tv-cache-detail')]"
        ".sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))"
        ".map(r => r.className.split(' ')[1])"
    ) == ["tv-turn", "tv-trace", "tv-turn", "tv-cache-detail", "tv-trace"]
    _shoot(nb, viewer, "cache-breakdown")
    bar.click()
    expect(panel).to_have_count(0)


def test_a_selected_turn_keeps_its_0_percent_cache_bar_visible(notebook: NotebookFactory) -> None:
    seed = """
add(model(0, 0, input_tokens=2000, cache_tokens=0))
add(trace(0, 1, name="list_files"))
add(model(1, 10, input_tokens=3000, cache_tokens=2000))
"""
    nb, viewer = open_viewer(notebook, "selected.ipynb", seed)
    tree = viewer.locator(".tv-scroller")
    tree.focus()
    tree.press("ArrowDown")  # turn 0, selected, not collapsed
    turn = viewer.locator('.tv-turn[data-turn="0"]')
    expect(turn).to_have_class(re.compile(r"\bis-selected\b"))
    expect(turn.locator(".tv-hit-rate")).to_have_text("0%")
    colours = """row => [getComputedStyle(row).backgroundColor,
        getComputedStyle(row.querySelector('.tv-cache-miss')).backgroundColor,
        getComputedStyle(row.querySelector('.tv-cache-hit')).backgroundColor]"""
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        row_bg, miss, hit = turn.evaluate(colours)
        assert miss != row_bg and hit != row_bg, (theme, row_bg, miss, hit)
        assert abs(_luminance(miss) - _luminance(row_bg)) > 30, (theme, row_bg, miss)
    _shoot(nb, viewer, "selected-0-percent")


def test_times_in_a_detail_are_the_users_local_time(notebook: NotebookFactory) -> None:
    seed = "add(trace(0, 0, name='read_file'))"
    nb, viewer = open_viewer(notebook, "localtime.ipynb", seed)
    cdp = nb.page.context.new_cdp_session(nb.page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    viewer.locator(".tv-trace").click()
    meta = viewer.locator(".tv-detail .tv-detail-meta")
    # T0 is 2026-01-01 00:00 UTC: 09:00 in Tokyo; the stored UTC time is in the tooltip.
    expect(meta).to_contain_text("started 2026-01-01 09:00:00.000")
    expect(meta).to_have_attribute("title", "started 2026-01-01T00:00:00Z (UTC)")


def test_the_model_badge_does_not_wear_the_focus_colour(notebook: NotebookFactory) -> None:
    seed = """
add(model(0, 0))
add(trace(0, 1))
"""
    _, viewer = open_viewer(notebook, "badges.ipynb", seed)
    border = "el => getComputedStyle(el).borderTopColor"
    model_border = viewer.locator(".tv-badge-model").first.evaluate(border)
    tool_border = viewer.locator(".tv-badge-tool").first.evaluate(border)
    assert model_border == tool_border  # told apart by its tint, not a focus-like border
    tint = "el => getComputedStyle(el).backgroundColor"
    assert viewer.locator(".tv-badge-model").first.evaluate(tint) != (
        viewer.locator(".tv-badge-tool").first.evaluate(tint)
    )


def test_a_selected_tool_rows_name_keeps_its_pill_in_both_themes(
    notebook: NotebookFactory,
) -> None:
    seed = """
add(model(0, 0))
add(trace(0, 1, name="list_files"))
"""
    nb, viewer = open_viewer(notebook, "pill.ipynb", seed)
    row = viewer.locator('.tv-trace[data-kind="tool"]')
    row.click()
    expect(row).to_have_class(re.compile(r"\bis-selected\b"))
    colours = """row => [getComputedStyle(row).backgroundColor,
        getComputedStyle(row.querySelector('.tv-badge')).backgroundColor]"""
    for theme in ("light", "dark"):
        nb.set_theme(theme)
        row_bg, badge_bg = row.evaluate(colours)
        assert abs(_luminance(badge_bg) - _luminance(row_bg)) > 8, (theme, row_bg, badge_bg)
