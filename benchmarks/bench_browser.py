"""Browser benchmark of the trace viewer: first rows and scroll frame times in JupyterLab.

Run: .venv/bin/python -m benchmarks.bench_browser [--traces 10000] [--step 280]
Figures are printed, never asserted. Targets (issue "trace viewer at 10,000 traces"): the
first rows painted under 200 ms after the view starts rendering, and no frame over 50 ms
while scrolling through the whole chat, the page loads that scrolling triggers included.

One JupyterLab server, one headless Chromium and one kernel (the harness of tests/browser).
The kernel's store gets a chat of N traces and one of N/10 (model calls with their prompt
and reply, tool calls with realistic arguments and results, a few errors, a few long turns).
Each is shown with ``TraceViewer(chat_id=...)``; the view sets two user-timing marks
(``boonb-traceviewer-render`` when it starts, ``boonb-traceviewer-first-rows`` the frame
after its first rows went into the DOM). Scrolling moves ``.tv-scroller`` down a fixed step
every animation frame until every trace is loaded and the end is reached; each frame's
``requestAnimationFrame`` delta is recorded. The baseline is the same N rows as a plain,
non-virtualised ``<table>`` in the same output area, built and scrolled the same way.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.browser.lab_page import HELPER_JS, Notebook, NotebookFactory, PageRecorder, open_lab
from tests.browser.lab_server import start_lab

TARGET_FIRST_ROWS_MS = 200.0
TARGET_FRAME_MS = 50.0
WARM_REPEATS = 5
SCROLL_TIMEOUT_MS = 240_000

#: Kernel side: a deterministic chat of ``n`` traces written through the store's writer.
SEED = r'''
import json, random, uuid
from datetime import UTC, datetime, timedelta
from boonb.frames import CacheSegment, ModelCallComplete, ToolTraceComplete, TraceRecord
from boonb.runtime import get_runtime
from boonb.widgets import TraceViewer

rt = get_runtime()
store = rt.store
SYSTEM = ("You are a careful data analyst working in a Jupyter notebook. Use the tools to "
          "inspect files, run code and fetch documentation; explain what you find. ") * 4
LINES = [f"    total += row[{i}] * weight  # accumulate column {i}" for i in range(40)]

def _tool_call(rng, i):
    match rng.choice(["read_file", "read_file", "grep", "run_python", "list_files", "fetch_url"]):
        case "read_file":
            path = f"src/pipeline/stage_{i % 37}.py"
            return "read_file", {"path": path}, "\n".join(rng.sample(LINES, 30))
        case "grep":
            pattern = rng.choice(["total", "weight", r"def \w+", "TODO"])
            matches = [{"path": f"src/pipeline/stage_{rng.randrange(37)}.py",
                        "line": rng.randrange(1, 400), "text": rng.choice(LINES).strip()}
                       for _ in range(rng.randrange(1, 12))]
            return "grep", {"pattern": pattern, "path": "src"}, {"matches": matches}
        case "run_python":
            code = "import pandas as pd\ndf = pd.read_csv('data.csv')\ndf.describe()"
            out = {"stdout": "\n".join(f"{c:>8} {rng.random():10.4f} {rng.random():10.4f}"
                                       for c in ("count", "mean", "std", "min", "max") * 4),
                   "stderr": "", "result": {"rows": rng.randrange(10_000), "cols": 12}}
            return "run_python", {"code": code}, out
        case "list_files":
            return "list_files", {"path": "src/pipeline"}, [f"stage_{k}.py" for k in range(37)]
        case _:
            url = f"https://docs.example.org/api/{rng.choice(['io', 'frame', 'plot'])}.html"
            return "fetch_url", {"url": url}, {"status": 200, "text": SYSTEM[:1500]}

def seed_chat(n, *, seed):
    """Write a chat of ``n`` traces (turns of ~400) and return its id."""
    rng = random.Random(seed)
    chat, session = uuid.uuid4(), uuid.uuid4()
    turns = max(3, n // 400)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    history = [{"role": "system", "content": SYSTEM},
               {"role": "user", "content": "Why does stage 12 of the pipeline drop rows?"}]
    written = 0
    prev_hash = None
    for turn in range(turns):
        per_turn = (n - written) // (turns - turn)
        done = 0
        while done < per_turn:
            calls = [_tool_call(rng, written + done + k) for k in range(rng.randrange(1, 5))]
            calls = calls[: per_turn - done - 1]
            prompt = 2_000 + 40 * (written + done) % 60_000
            cached = int(prompt * rng.uniform(0.5, 0.95))
            latency = rng.uniform(400, 9_000)
            error = "provider error: 529 overloaded, retried" if rng.random() < 0.01 else None
            reply = {"content": "Let me look at " + ", ".join(c[0] for c in calls) + ".",
                     "tool_calls": [{"id": f"call_{written + done}_{k}", "name": c[0],
                                     "arguments": json.dumps(c[1])}
                                    for k, c in enumerate(calls)]}
            model = TraceRecord(
                id=uuid.uuid4(), session_id=session, chat_id=chat, turn_number=turn,
                kind="model", tool_name="deepseek-chat", started_at=t,
                finished_at=t + timedelta(milliseconds=latency), latency_ms=latency,
                input={"model": "deepseek-chat", "messages": history[:1] + history[-6:],
                       "tools": ["read_file", "grep", "run_python", "list_files", "fetch_url"]},
                output=reply, input_tokens=prompt, cache_tokens=cached,
                cache_miss_tokens=prompt - cached, output_tokens=rng.randrange(40, 600),
                tokens_used=prompt + 300, error=error, outcome="error" if error else "success",
            )
            store.writer.enqueue(ModelCallComplete(trace=model, cache=[
                CacheSegment(segment="system", tokens=800, hit_tokens=800, miss_tokens=0,
                             hash="s", prefix_hash="s"),
                CacheSegment(segment="history", tokens=prompt - 800,
                             hit_tokens=max(0, cached - 800),
                             miss_tokens=prompt - 800 - max(0, cached - 800),
                             hash=f"h{written + done}", prefix_hash=prev_hash),
            ]))
            prev_hash = f"h{written + done}"
            history.append({"role": "assistant", "content": reply["content"]})
            t += timedelta(milliseconds=latency)
            for k, (name, args, result) in enumerate(calls):
                latency = rng.lognormvariate(5.5, 1.2)
                failed = rng.random() < 0.03
                error = f"{name}: FileNotFoundError: {args}" if failed else None
                store.writer.enqueue(ToolTraceComplete(trace=TraceRecord(
                    id=uuid.uuid4(), session_id=session, chat_id=chat, turn_number=turn,
                    kind="tool", tool_name=name, call_id=f"call_{written + done}_{k}",
                    input=args, output=None if failed else result, started_at=t,
                    finished_at=t + timedelta(milliseconds=latency), latency_ms=latency,
                    error=error, outcome="error" if failed else "success",
                )))
                history.append({"role": "tool", "content": str(result)[:400]})
                t += timedelta(milliseconds=latency)
            done += 1 + len(calls)
        written += done
    store.writer.flush(timeout=120)
    return chat

def table_rows(chat):
    """The chat's rows as the plain-table baseline shows them, in the view's order."""
    with store.db.connection() as con:
        rows = con.execute(
            "SELECT turn_number, kind, tool_name, outcome, latency_ms, tokens_used "
            "FROM tool_traces WHERE chat_id = ? ORDER BY turn_number, started_at, id", [chat]
        ).fetchall()
    return json.dumps(rows)
'''

#: Page side, injected once before the first viewer is displayed.
BENCH_JS = r"""
() => {
  const RENDER = 'boonb-traceviewer-render';
  const FIRST_ROWS = 'boonb-traceviewer-first-rows';
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

  function summary(deltas) {
    const sorted = [...deltas].sort((a, b) => a - b);
    return {
      frames: deltas.length,
      p50: pct(sorted, 0.5) ?? 0,
      p95: pct(sorted, 0.95) ?? 0,
      max: sorted[sorted.length - 1] ?? 0,
      over50: deltas.filter((d) => d > 50).length,
    };
  }

  // Scroll down `step` px per frame until `finished()` holds at the end; one delta per frame.
  // `loaded()` tells page arrivals apart: a long frame in which it changed counts as one.
  async function scrollThrough(scroller, step, finished, timeoutMs, loaded = () => 0) {
    scroller.scrollTop = 0;
    await frame();
    await frame();
    const longFrames = [];
    let observer = null;
    if (PerformanceObserver.supportedEntryTypes.includes('long-animation-frame')) {
      observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          const scripts = e.scripts
            .filter((x) => x.duration > 5)
            .map((x) => `${x.invoker || x.invokerType} ${Math.round(x.duration)}ms`);
          const layout = e.styleAndLayoutStart > 0
            ? Math.round(e.startTime + e.duration - e.styleAndLayoutStart) : 0;
          longFrames.push({
            duration: Math.round(e.duration),
            blocking: Math.round(e.blockingDuration),
            layout,
            scripts: scripts.join(', '),
          });
        }
      });
      observer.observe({ type: 'long-animation-frame' });
    }
    const start = performance.now();
    const deltas = [];
    let waiting = 0;
    let longWithPage = 0;
    let timedOut = false;
    await new Promise((resolve) => {
      let last = null;
      let lastLoaded = loaded();
      const tick = (now) => {
        if (last !== null) {
          deltas.push(now - last);
          if (now - last > 50 && loaded() !== lastLoaded) longWithPage += 1;
        }
        last = now;
        lastLoaded = loaded();
        const top = scroller.scrollTop;
        if (top + scroller.clientHeight >= scroller.scrollHeight - 1) {
          if (finished()) return resolve();
          waiting += 1;  // at the loaded end, waiting for the next page
        }
        if (now - start > timeoutMs) {
          timedOut = true;
          return resolve();
        }
        scroller.scrollTop = top + step;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    observer?.disconnect();
    return {
      ...summary(deltas),
      waiting,
      longWithPage,
      timedOut,
      totalMs: performance.now() - start,
      longFrames: longFrames.length,
      worstFrames: longFrames.sort((a, b) => b.duration - a.duration).slice(0, 5),
      scrollHeight: scroller.scrollHeight,
    };
  }

  window.__bench = {
    clearMarks() {
      performance.clearMarks(RENDER);
      performance.clearMarks(FIRST_ROWS);
    },
    firstRows(chatId) {
      const of = (name) => performance.getEntriesByName(name, 'mark')
        .filter((m) => m.detail && m.detail.chatId === chatId);
      const painted = of(FIRST_ROWS).at(-1);
      if (painted === undefined) return null;
      const render = of(RENDER).find((m) => m.detail.view === painted.detail.view);
      return render === undefined ? null : painted.startTime - render.startTime;
    },
    async scrollViewer(root, step, timeoutMs) {
      // Page round trips: from data-loading="page" being set to being removed.
      const trips = [];
      let since = null;
      const watch = new MutationObserver(() => {
        const loading = root.dataset.loading === 'page';
        if (loading && since === null) since = performance.now();
        if (!loading && since !== null) {
          trips.push(performance.now() - since);
          since = null;
        }
      });
      watch.observe(root, { attributes: true, attributeFilter: ['data-loading'] });
      const finished = () => root.dataset.hasMore === 'false' && root.dataset.loading !== 'page';
      const result = await scrollThrough(
        root.querySelector('.tv-scroller'), step, finished, timeoutMs, () => root.dataset.loaded);
      watch.disconnect();
      trips.sort((a, b) => a - b);
      return {
        ...result,
        loaded: Number(root.dataset.loaded),
        pages: trips.length,
        tripP50: pct(trips, 0.5) ?? 0,
        tripMax: trips[trips.length - 1] ?? 0,
        domRows: root.querySelectorAll('.tv-row').length,
      };
    },
    async table(host, rows, step, timeoutMs) {
      // The baseline: every row in the DOM, in a scroller as tall as the viewer's.
      const start = performance.now();
      const scroller = document.createElement('div');
      scroller.style.cssText = 'height: 440px; overflow-y: auto; font-size: 13px;';
      const table = document.createElement('table');
      table.style.cssText = 'width: 100%; border-collapse: collapse;';
      const body = document.createElement('tbody');
      for (const [turn, kind, name, outcome, latency, tokens] of rows) {
        const tr = document.createElement('tr');
        tr.style.cssText = 'height: 28px; border-bottom: 1px solid #eee;';
        for (const text of [String(turn), kind, name, outcome]) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.append(td);
        }
        const barCell = document.createElement('td');
        const bar = document.createElement('div');
        const width = Math.min(100, latency / 90);
        bar.style.cssText = `height: 8px; background: #388e3c; width: ${width}%`;
        barCell.append(bar);
        const latencyCell = document.createElement('td');
        latencyCell.textContent = `${Math.round(latency)} ms`;
        const tokenCell = document.createElement('td');
        tokenCell.textContent = tokens > 0 ? `${tokens} tok` : '';
        tr.append(barCell, latencyCell, tokenCell);
        body.append(tr);
      }
      table.append(body);
      scroller.append(table);
      host.append(scroller);
      await frame();
      await frame();
      const firstRows = performance.now() - start;
      const scroll = await scrollThrough(scroller, step, () => true, timeoutMs);
      scroller.remove();
      return { firstRows, ...scroll, domRows: rows.length };
    },
  };
}
"""


@dataclass
class Scroll:
    label: str
    figures: dict[str, Any]


def _kernel_str(nb: Notebook, expr: str) -> str:
    value = ast.literal_eval(nb.kernel_value(expr))
    assert isinstance(value, str)
    return value


def show_viewer(page: Page, nb: Notebook, chat_var: str, chat_id: str) -> tuple[Locator, float]:
    """Display a fresh viewer of ``chat_var`` (closing the last one); ms to its first rows."""
    page.evaluate("() => window.__bench.clearMarks()")
    out = nb.run_cell(
        "if 'viewer' in globals():\n    viewer.close()\n"
        f"viewer = TraceViewer(chat_id={chat_var})\nviewer"
    )
    page.wait_for_function(
        "chat => window.__bench.firstRows(chat) !== null", arg=chat_id, timeout=60_000, polling=50
    )
    first_rows = float(page.evaluate("chat => window.__bench.firstRows(chat)", chat_id))
    return out.locator(".boonb-traceviewer"), first_rows


def scroll_viewer(viewer: Locator, step: int) -> dict[str, Any]:
    viewer.scroll_into_view_if_needed()
    figures: dict[str, Any] = viewer.evaluate(
        "(root, [step, timeout]) => window.__bench.scrollViewer(root, step, timeout)",
        [step, SCROLL_TIMEOUT_MS],
    )
    return figures


def run(traces: int, step: int, tmp: Path, *, verbose: bool = False) -> None:
    small = max(1, traces // 10)
    lab = start_lab(root=tmp / "root", state_dir=tmp / "state")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
            )
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.set_default_timeout(60_000)
            context.add_init_script(HELPER_JS)
            page = context.new_page()
            recorder = PageRecorder(test_name="bench_browser", artifacts_dir=tmp / "artifacts")
            recorder.attach(page)
            open_lab(page, lab, workspace="bench-browser")
            notebooks = NotebookFactory(page=page, lab=lab, recorder=recorder, folder="bench")
            nb = notebooks.open("bench.ipynb", timeout=120)

            started = time.perf_counter()
            nb.run_cell(SEED + "\n_ = None")
            nb.run_cell(
                f"big = seed_chat({traces}, seed=1)\nsmall = seed_chat({small}, seed=2)\n_ = None",
                timeout=600,
            )
            print(f"seeded {traces:,} + {small:,} traces in {time.perf_counter() - started:.1f} s")
            big_id = _kernel_str(nb, "str(big)")
            small_id = _kernel_str(nb, "str(small)")
            rows = json.loads(_kernel_str(nb, "table_rows(big)"))
            page.evaluate(BENCH_JS)

            first: list[tuple[str, list[float]]] = []
            viewer, cold = show_viewer(page, nb, "big", big_id)
            warm = [show_viewer(page, nb, "big", big_id)[1] for _ in range(WARM_REPEATS)]
            first.append((f"viewer, {traces:,} traces, first in page", [cold]))
            first.append((f"viewer, {traces:,} traces, again (x{WARM_REPEATS})", warm))
            small_first = [show_viewer(page, nb, "small", small_id)[1] for _ in range(WARM_REPEATS)]
            first.append((f"viewer, {small:,} traces (x{WARM_REPEATS})", small_first))

            scrolls: list[Scroll] = []
            viewer, _ = show_viewer(page, nb, "small", small_id)
            scrolls.append(Scroll(f"viewer, {small:,} traces", scroll_viewer(viewer, step)))
            viewer, _ = show_viewer(page, nb, "big", big_id)
            scrolls.append(Scroll(f"viewer, {traces:,} traces", scroll_viewer(viewer, step)))

            host = viewer.locator("xpath=..")
            host.scroll_into_view_if_needed()
            table: dict[str, Any] = host.evaluate(
                "(host, [rows, step, timeout]) => window.__bench.table(host, rows, step, timeout)",
                [rows, step, SCROLL_TIMEOUT_MS],
            )
            first.append((f"plain <table>, {traces:,} rows", [table["firstRows"]]))
            scrolls.append(Scroll(f"plain <table>, {traces:,} rows", table))
            if recorder.console_errors:
                print("console errors:", *recorder.console_errors[-5:], sep="\n  ")
            notebooks.close()
            browser.close()
    finally:
        lab.stop()
    report(first, scrolls, step, verbose=verbose)


def report(
    first: list[tuple[str, list[float]]], scrolls: list[Scroll], step: int, *, verbose: bool
) -> None:
    print(f"\nrender start -> first rows painted (target < {TARGET_FIRST_ROWS_MS:.0f} ms)")
    print(f"  {'':44} {'median':>8} {'max':>8}")
    for label, values in first:
        print(f"  {label:44} {statistics.median(values):6.1f}ms {max(values):6.1f}ms")

    print(
        f"\nscrolling to the end, {step} px per frame, page loads included "
        f"(target: no frame > {TARGET_FRAME_MS:.0f} ms)"
    )
    head = (
        f"  {'':30} {'frames':>6} {'p50':>7} {'p95':>7} {'max':>7} {'>50ms':>5} {'page':>4} "
        f"{'LoAF':>4} {'wait':>5} {'total':>7} {'pages':>5} {'trip p50':>8} {'trip max':>8} "
        f"{'DOM rows':>8}"
    )
    print(head)
    for s in scrolls:
        f = s.figures
        pages = f.get("pages")
        trips = f"{f['tripP50']:6.1f}ms {f['tripMax']:6.1f}ms" if pages else f"{'–':>8} {'–':>8}"
        print(
            f"  {s.label:30} {f['frames']:6d} {f['p50']:5.1f}ms {f['p95']:5.1f}ms "
            f"{f['max']:5.1f}ms {f['over50']:5d} {f['longWithPage']:4d} {f['longFrames']:4d} "
            f"{f['waiting']:5d} "
            f"{f['totalMs'] / 1000:6.1f}s {pages if pages is not None else '–':>5} {trips} "
            f"{f['domRows']:8d}" + ("  TIMED OUT" if f["timedOut"] else "")
        )
    print(
        "\n  frames: rAF deltas recorded; >50ms: frames longer than 50 ms; page: those of them "
        "in which a page arrived;\n  LoAF: Chrome's long-animation-frame entries; wait: frames "
        "spent at the loaded end waiting for a page;\n  trip: page request to its rows shown; "
        "DOM rows: .tv-row elements (or <tr>) in the DOM at the end."
    )
    if verbose:
        for s in scrolls:
            print(f"\n  longest animation frames, {s.label}:")
            for w in s.figures["worstFrames"]:
                print(
                    f"    {w['duration']:4d} ms (blocking {w['blocking']} ms, style+layout+paint "
                    f"{w['layout']} ms) {w['scripts']}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=10_000, help="traces in the big chat")
    parser.add_argument("--step", type=int, default=280, help="px scrolled per frame")
    parser.add_argument(
        "--verbose", action="store_true", help="list the longest animation frames' work"
    )
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"Chromium not found at {CHROMIUM}: run scripts/ensure-chromium")
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        run(args.traces, args.step, Path(tmp), verbose=args.verbose)


if __name__ == "__main__":
    main()
