"""Browser benchmark of image intake in the chat view: a 20 MB JPEG from the file picker to
its thumbnail on screen, and the size of every comm message on the way.

Run: .venv/bin/python -m benchmarks.bench_chat_images [--repeats 3]
Figures are printed, never asserted. One JupyterLab server, one headless Chromium and one
kernel (the harness of tests/browser); each repeat attaches a new noisy JPEG of about
19.5 MB (just under the 20 MB default limit; noise does not compress, and a new image is
neither deduplicated nor has a cached thumbnail).

Times, in the page (``performance.now()``, checked every animation frame):

- picker -> pending preview: the file chosen until its pending thumbnail (the browser's
  own decode of the file, no kernel) is drawn;
- picker -> stored: until the kernel replied to the upload (the bytes as one binary
  buffer over the websocket, then ``add_bytes``: stage, hash, Pillow checks, store);
- send -> message shown (skeleton): Send clicked until the message is in the chat with
  its thumbnail's skeleton (the follow-up accepted, the user message's frame painted);
- send -> thumbnail on screen: until the thumbnail is drawn (then also the thumbnail
  request, the kernel's 600 px thumbnail, its bytes as a binary buffer);
- picker -> thumbnail on screen: the whole way, with the send clicked as soon as the
  upload was stored.

Every websocket frame between the page and the kernel is recorded (Playwright), and for
each comm message: direction, what it is (the ``kind`` of its content), the size of its
JSON and of its binary buffers, and whether the JSON holds a run of base64 (1,000+
characters of the base64 alphabet) - it never should.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, WebSocket, sync_playwright

from benchmarks.bench_attachments import big_jpeg
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.browser.lab_page import HELPER_JS, NotebookFactory, PageRecorder, open_lab
from tests.browser.lab_server import start_lab

BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{1000,}")

SETUP = """
%load_ext boonb
from boonb.runtime import get_runtime
from boonb.sim import Rule
sim = get_runtime().simulator()
sim.clear_rules()
sim.add_rule(Rule(".", reply="Noted."))
"""

#: In the page: the moment (performance.now) a condition first holds, checked every frame.
WHEN_JS = (
    "([selector, check]) => { const el = document.querySelector(selector); "
    "return el !== null && new Function('el', check)(el) ? performance.now() : null; }"
)
DRAWN = "return el.complete && el.naturalWidth > 0;"


@dataclass
class CommMessage:
    direction: str
    kind: str
    json_bytes: int
    buffer_bytes: list[int]
    base64_in_json: bool


def parse_frame(payload: str | bytes) -> tuple[dict[str, Any], bytes, list[bytes]] | None:
    """(message, its JSON, its buffers) of one websocket frame, for either Jupyter protocol."""
    if isinstance(payload, str):
        raw = payload.encode()
        return json.loads(raw), raw, []
    try:  # v1.kernel.websocket.jupyter.org: uint64 offsets, then channel, header, ... parts
        count = struct.unpack_from("<Q", payload)[0]
        offsets = list(struct.unpack_from(f"<{count}Q", payload, 8))
        if offsets[-1] == len(payload):  # the end of the last part, not a part of its own
            offsets.pop()
        parts = [payload[a:b] for a, b in zip(offsets, [*offsets[1:], len(payload)], strict=True)]
        header, parent, metadata, content = (json.loads(p) for p in parts[1:5])
        message = {
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
        }
        return message, b"".join(parts[1:5]), parts[5:]
    except (struct.error, ValueError, UnicodeDecodeError):
        pass
    count = struct.unpack_from("!I", payload)[0]  # the legacy binary layout
    offsets = list(struct.unpack_from(f"!{count}I", payload, 4))
    parts = [payload[a:b] for a, b in zip(offsets, [*offsets[1:], len(payload)], strict=True)]
    return json.loads(parts[0]), parts[0], parts[1:]


class CommLog:
    """Every comm message of the page's kernel websockets."""

    def __init__(self, page: Page) -> None:
        self.messages: list[CommMessage] = []
        page.on("websocket", self._watch)

    def _watch(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self._record("browser -> kernel", payload))
        ws.on("framereceived", lambda payload: self._record("kernel -> browser", payload))

    def _record(self, direction: str, payload: str | bytes) -> None:
        try:
            parsed = parse_frame(payload)
        except (ValueError, struct.error):
            return
        if parsed is None:
            return
        message, raw, buffers = parsed
        if message.get("header", {}).get("msg_type") != "comm_msg":
            return
        data = message.get("content", {}).get("data", {})
        inner = data.get("content") if isinstance(data.get("content"), dict) else {}
        kind = str(inner.get("kind", data.get("method", "?")))
        if kind == "frame":
            kind = f"frame {inner.get('frame', {}).get('type', '?')}"
        self.messages.append(
            CommMessage(
                direction,
                kind,
                len(raw),
                [len(b) for b in buffers],
                BASE64_RUN.search(raw) is not None,
            )
        )


def when(page: Page, selector: str, check: str, timeout_ms: float = 120_000) -> float:
    handle = page.wait_for_function(
        WHEN_JS, arg=[selector, check], polling="raf", timeout=timeout_ms
    )
    return float(handle.json_value())


def attach_once(page: Page, chat_selector: str, path: Path, index: int) -> dict[str, float]:
    chat = page.locator(chat_selector)
    page.evaluate(
        "() => { window.__pick = null; if (window.__watching) return; window.__watching = true;"
        " document.addEventListener('change', (e) => {"
        " if (e.target.classList?.contains('chat-attach-picker'))"
        " window.__pick = performance.now(); }, { capture: true }); }"
    )
    chat.locator(".chat-attach-picker").set_input_files(str(path))
    picked = float(page.wait_for_function("() => window.__pick", polling="raf").json_value())
    preview = when(page, f"{chat_selector} .chat-pending-item img", DRAWN)
    stored = when(page, f'{chat_selector} .chat-pending-item[data-state="ready"]', "return true;")
    sent = float(
        page.evaluate(
            "(sel) => { const t = performance.now();"
            " document.querySelector(sel + ' .chat-send').click(); return t; }",
            chat_selector,
        )
    )
    turn = index + 2
    listed = when(
        page, f'{chat_selector} .chat-turn[data-turn="{turn}"] .boonb-thumb', "return true;"
    )
    shown = when(
        page,
        f'{chat_selector} .chat-turn[data-turn="{turn}"] .boonb-thumb[data-state="ready"] img',
        DRAWN,
    )
    page.wait_for_function(
        "(sel) => document.querySelector(sel)?.dataset.state === 'awaiting_input'",
        arg=chat_selector,
        timeout=120_000,
    )
    return {
        "picker -> pending preview": preview - picked,
        "picker -> stored": stored - picked,
        "send -> message shown (skeleton)": listed - sent,
        "send -> thumbnail on screen": shown - sent,
        "picker -> thumbnail on screen": shown - picked,
    }


def run(repeats: int, tmp: Path) -> None:
    images = []
    for i in range(repeats):
        path = tmp / f"photo-{i}.jpg"
        path.write_bytes(big_jpeg())
        images.append(path)
    print("images: " + ", ".join(f"{p.stat().st_size / 2**20:.1f} MB" for p in images))
    lab = start_lab(root=tmp / "root", state_dir=tmp / "state")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
            )
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.set_default_timeout(120_000)
            context.add_init_script(HELPER_JS)
            page = context.new_page()
            recorder = PageRecorder(test_name="bench_chat_images", artifacts_dir=tmp / "art")
            recorder.attach(page)
            comms = CommLog(page)
            open_lab(page, lab, workspace="bench-chat-images")
            notebooks = NotebookFactory(page=page, lab=lab, recorder=recorder, folder="bench")
            nb = notebooks.open("bench.ipynb", timeout=120)
            nb.run_cell(SETUP)
            out = nb.run_cell("%%agent --max-turns 2\nHello.")
            out.locator('.boonb-chat[data-ready="true"]').wait_for()
            chat_selector = ".boonb-chat"
            before = len(comms.messages)
            figures = []
            for i, path in enumerate(images):
                page.locator(".chat-input").fill(f"Photo {i}: what is in it?")
                figures.append(attach_once(page, chat_selector, path, i))
                if i == 0:
                    first_run = comms.messages[before:]
            if recorder.console_errors:
                print("console errors:", *recorder.console_errors[-5:], sep="\n  ")
            notebooks.close()
            browser.close()
    finally:
        lab.stop()
    report(figures, first_run, comms.messages[before:])


def report(
    figures: list[dict[str, float]], first: list[CommMessage], every: list[CommMessage]
) -> None:
    print(f"\n{len(figures)} x a ~20 MB JPEG, picked in the chat view (ms; median, min, max)")
    for name in figures[0]:
        values = [f[name] for f in figures]
        print(
            f"  {name:<30} {statistics.median(values):8.1f} {min(values):8.1f} {max(values):8.1f}"
        )
    print("\ncomm messages of the first image, in order (JSON bytes; binary buffers)")
    for m in first:
        buffers = (
            ", ".join(
                f"{b / 2**20:.2f} MB" if b > 2**20 else f"{b / 1024:.1f} KB" for b in m.buffer_bytes
            )
            or "-"
        )
        flag = "  BASE64 IN JSON" if m.base64_in_json else ""
        print(f"  {m.direction:<18} {m.kind:<28} {m.json_bytes:>8,} B   buffers: {buffers}{flag}")
    largest = max(every, key=lambda m: m.json_bytes)
    print(
        f"\nall {len(every)} comm messages: largest JSON {largest.json_bytes:,} B "
        f"({largest.kind}); with base64 in the JSON: "
        f"{sum(m.base64_in_json for m in every)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-chat-images-") as tmp:
        started = time.perf_counter()
        run(args.repeats, Path(tmp))
        print(f"\n(whole benchmark: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
