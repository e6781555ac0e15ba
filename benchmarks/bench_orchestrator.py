"""Browser benchmark of the orchestrator's run pane: 200 parallel agents, 10,000 log lines.

Run: .venv/bin/python -m benchmarks.bench_orchestrator [--agents 200] [--lines 10000]
Figures are printed, never asserted. Targets (issue 15): the run pane keeps frames under
50 ms while a 200-agent run updates it; a 10,000-line log stays scrollable.

One JupyterLab server, one headless Chromium and one kernel (the harness of tests/browser).

1. A workflow of N parallel agents on the simulator, its run pane (``Orchestrator(run)``)
   shown while it runs. In the page, every animation frame's interval is recorded while
   the run goes (a frame the main thread held up shows as a long interval), and each of
   the view's paints is a ``boonb-orchestrator-paint`` user-timing measure. Baseline: the
   same page's frame intervals with nothing running.
2. A run that logs M lines, its pane scrolled from top to bottom in steps, one step per
   animation frame: the frame intervals while scrolling. Baseline: the same M lines as
   plain ``<div>``s in a scroller of the same size (no virtualisation), scrolled the same.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.browser.lab_page import HELPER_JS, Notebook, NotebookFactory, PageRecorder, open_lab
from tests.browser.lab_server import start_lab

TARGET_FRAME_MS = 50.0
SCROLL_STEPS = 200

SETUP = """
%load_ext boonb
from boonb.runtime import get_runtime
from boonb.widgets.orchestrator import Orchestrator
rt = get_runtime()
rt.simulator().latency = 0.2
"""

AGENTS_SCRIPT = '''
worker = agent("worker", prompt="You answer in one line.")
log("fanning out to {n} agents")
answers = phase("fan-out", agents=[(worker, "item " + str(i)) for i in range({n})])
result = len([a for a in answers.values() if a])
'''

LOG_SCRIPT = '''
for i in range({n}):
    log("line " + str(i) + ": the quick brown fox jumps over the lazy dog")
result = {n}
'''

BENCH_JS = r"""
() => {
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  window.__bench = {
    recording: null,
    /** Record every animation frame's interval until stop(). */
    start() {
      performance.clearMeasures('boonb-orchestrator-paint');
      const rec = { intervals: [], last: performance.now(), on: true };
      const loop = (now) => {
        if (!rec.on) return;
        rec.intervals.push(now - rec.last);
        rec.last = now;
        requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
      this.recording = rec;
    },
    stop() {
      const rec = this.recording;
      rec.on = false;
      const paints = performance.getEntriesByName('boonb-orchestrator-paint', 'measure')
        .map((m) => m.duration);
      return { intervals: rec.intervals, paints };
    },
    /** Scroll ``scroller`` top to bottom in ``steps`` steps, one per frame: frame intervals. */
    async scroll(scroller, steps) {
      const intervals = [];
      const max = scroller.scrollHeight - scroller.clientHeight;
      let last = performance.now();
      for (let i = 0; i <= steps; i += 1) {
        scroller.scrollTop = Math.round((max * i) / steps);
        scroller.dispatchEvent(new Event('scroll'));
        const now = await frame();
        intervals.push(now - last);
        last = now;
      }
      return intervals;
    },
    /** The baseline: ``n`` plain divs in a scroller of the same size, scrolled the same. */
    async plainScroll(host, lines, steps) {
      const scroller = document.createElement('div');
      scroller.style.cssText = 'height:252px;overflow-y:auto;font-family:monospace;font-size:12px';
      for (const text of lines) {
        const div = document.createElement('div');
        div.style.cssText = 'height:18px;line-height:18px;white-space:pre';
        div.textContent = text;
        scroller.append(div);
      }
      host.append(scroller);
      await frame();
      const intervals = await this.scroll(scroller, steps);
      scroller.remove();
      return intervals;
    },
  };
}
"""


def show_run(nb: Notebook, script: str, *, wait_s: float) -> Locator:
    """Start a cell script run and display its pane; return the pane once it shows."""
    nb.run_cell(
        f"rid = rt.workflows.run_script({script!r}, budget=100_000_000)\n"
        "pane = Orchestrator(rid)\npane"
    )
    pane = nb.output(nb.cell_count() - 1).locator(".or-run")
    pane.wait_for(state="visible", timeout=wait_s * 1000)
    return pane


def wait_ended(page: Page, pane: Locator, timeout_s: float) -> None:
    try:
        page.wait_for_function(
            "el => ['completed', 'failed', 'cancelled'].includes(el.dataset.state)",
            arg=pane.element_handle(),
            timeout=timeout_s * 1000,
            polling=100,
        )
    except Exception:
        print("the run did not end; its pane reads:", pane.locator(".or-run-facts").inner_text())
        raise


def run(agents: int, lines: int, tmp: Path) -> None:
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
            recorder = PageRecorder(test_name="bench_orchestrator", artifacts_dir=tmp / "art")
            recorder.attach(page)
            open_lab(page, lab, workspace="bench-orchestrator")
            notebooks = NotebookFactory(page=page, lab=lab, recorder=recorder, folder="bench")
            nb = notebooks.open("bench.ipynb", timeout=120)
            nb.run_cell(SETUP)
            page.evaluate(BENCH_JS)

            page.evaluate("() => window.__bench.start()")
            page.wait_for_timeout(2000)
            idle = page.evaluate("() => window.__bench.stop()")

            began = time.perf_counter()
            pane = show_run(nb, AGENTS_SCRIPT.format(n=agents), wait_s=60)
            # From the pane's first paint on: the view's module loading is not the update.
            page.evaluate("() => window.__bench.start()")
            wait_ended(page, pane, 600)
            updating = page.evaluate("() => window.__bench.stop()")
            seconds = time.perf_counter() - began
            state = pane.get_attribute("data-state")
            failed = pane.locator(".or-run-error").inner_text() if state != "completed" else ""
            shown_agents = pane.locator(".or-agent").count()

            began = time.perf_counter()
            pane = show_run(nb, LOG_SCRIPT.format(n=lines), wait_s=60)
            wait_ended(page, pane, 600)
            log_seconds = time.perf_counter() - began
            page.wait_for_function(
                f"el => Number(el.dataset.lines) >= {lines}",
                arg=pane.locator(".or-log").element_handle(),
                timeout=120_000,
            )
            scroller = pane.locator(".or-log")
            scroll = scroller.evaluate(f"el => window.__bench.scroll(el, {SCROLL_STEPS})")
            texts = [f"12:00:00  line {i}: the quick brown fox" for i in range(lines)]
            plain = nb.output(nb.cell_count() - 1).evaluate(
                f"(h, lines) => window.__bench.plainScroll(h, lines, {SCROLL_STEPS})", texts
            )
            if recorder.console_errors:
                print("console errors:", *recorder.console_errors[-5:], sep="\n  ")
            notebooks.close()
            browser.close()
    finally:
        lab.stop()
    report(
        agents, lines, idle, updating, seconds, state, failed, shown_agents, scroll, plain,
        log_seconds,
    )


def _ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(values):6.1f} ms  p95 {p95:6.1f}  max {max(values):6.1f}  "
        f"(n={len(values)}, over {TARGET_FRAME_MS:.0f} ms: "
        f"{sum(1 for v in values if v > TARGET_FRAME_MS)})"
    )


def report(
    agents: int,
    lines: int,
    idle: dict[str, Any],
    updating: dict[str, Any],
    seconds: float,
    state: str | None,
    failed: str,
    shown_agents: int,
    scroll: list[float],
    plain: list[float],
    log_seconds: float,
) -> None:
    print(f"\nrun pane, {agents} parallel agents on the simulator ({state}, {shown_agents} rows, "
          f"{seconds:.1f} s; target frames < {TARGET_FRAME_MS:.0f} ms)")  # fmt: skip
    if failed:
        print(f"  (the run ended {state}: {failed})")
    print(f"  frame intervals while it updates   {_ms(updating['intervals'])}")
    print(f"  the view's paints                  {_ms(updating['paints'])}")
    print(f"baseline: frame intervals, idle page {_ms(idle['intervals'])}")
    print(f"\nlog stream, {lines:,} lines ({log_seconds:.1f} s to run), scrolled top to bottom "
          f"in {SCROLL_STEPS} frames")  # fmt: skip
    print(f"  virtualised log                    {_ms(scroll[1:])}")
    print(f"baseline: {lines:,} plain divs           {_ms(plain[1:])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boonb-bench-orchestrator-") as tmp:
        run(args.agents, args.lines, Path(tmp))


if __name__ == "__main__":
    main()
