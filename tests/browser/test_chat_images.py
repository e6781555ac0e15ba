"""Images in the chat view, in a real JupyterLab: picked, dropped, sent, shown, refused.

The kernel's simulator stands in for a vision model and records every request, so the
test reads back the data URIs it received and compares their bytes with the files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
from pathlib import Path

from PIL import Image
from playwright.sync_api import Locator, Page, expect

from .conftest import ARTIFACTS_DIR
from .lab_page import Notebook, NotebookFactory
from .lab_server import LabServer

SHOTS_DIR = Path("/work/notes/shots")

SETUP = """
%load_ext boonb
import base64, hashlib
from boonb.runtime import get_runtime
from boonb.sim import Rule

sim = get_runtime().simulator()
sim.clear_rules()
sim.add_rule(Rule(".", reply="Noted."))  # an answer, no tool calls: one model call a turn

def sent_images():
    \"\"\"'<data URI head> <sha256>' of each image the simulator received, sorted, by '|'.\"\"\"
    found = set()
    for request in sim.requests:
        for message in request["messages"]:
            if isinstance(message["content"], list):
                for part in message["content"]:
                    if part.get("type") == "image_url":
                        head, _, data = part["image_url"]["url"].partition(",")
                        found.add((head, hashlib.sha256(base64.b64decode(data)).hexdigest()))
    return "|".join(sorted(f"{head} {digest}" for head, digest in found))
"""


def png(size: tuple[int, int], color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chat_of(out: Locator) -> Locator:
    chat = out.locator(".boonb-chat")
    expect(chat).to_have_attribute("data-ready", "true", timeout=30_000)
    return chat


def start_chat(nb: Notebook) -> Locator:
    nb.run_cell(SETUP)
    chat = chat_of(nb.run_cell("%%agent --max-turns 2\nHello."))
    expect(chat).to_have_attribute("data-can-send", "true")
    return chat


def drop_file(chat: Locator, data: bytes, name: str, mime: str) -> None:
    """A synthetic drop of one file onto the chat, as the browser fires it."""
    chat.evaluate(
        """(el, [b64, name, mime]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: mime }));
          for (const type of ["dragenter", "dragover", "drop"]) {
            el.dispatchEvent(
              new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }),
            );
          }
        }""",
        [base64.b64encode(data).decode("ascii"), name, mime],
    )


def shot(target: Locator | Page, label: str) -> None:
    """Screenshot into the test artifacts, and the review folder when it exists."""
    path = ARTIFACTS_DIR / f"images-{label}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(target, Locator):
        target.scroll_into_view_if_needed()
        # The log scrolls: show the message with the images from its top.
        target.evaluate(
            "el => el.querySelector('.chat-msg-user:has(.boonb-thumbs)')"
            "?.scrollIntoView({ block: 'start' })"
        )
    target.screenshot(path=path)
    if SHOTS_DIR.is_dir():
        shutil.copy(path, SHOTS_DIR / path.name)


def stored(lab: LabServer) -> Path:
    return lab.root / ".boonb" / "attachments"


def test_picked_and_dropped_images_are_sent_shown_opened_and_survive_a_restart(
    notebook: NotebookFactory, lab: LabServer, page: Page, tmp_path: Path
) -> None:
    nb = notebook.open("chat-images.ipynb")
    chat = start_chat(nb)
    wide, tall = png((1200, 800), "darkorange"), png((400, 600), "teal")
    picked = tmp_path / "plot.png"
    picked.write_bytes(wide)

    chat.locator(".chat-attach-picker").set_input_files(str(picked))
    drop_file(chat, tall, "dropped.png", "image/png")
    pending = chat.locator(".chat-pending-item")
    expect(pending).to_have_count(2)
    expect(chat.locator('.chat-pending-item[data-state="ready"]')).to_have_count(2)
    expect(pending.nth(0)).to_have_attribute("data-name", "plot.png")
    expect(pending.nth(1)).to_have_attribute("data-name", "dropped.png")
    chat.locator(".chat-input").fill("What do these show?")
    shot(chat, "pending-light")

    chat.locator(".chat-send").click()
    expect(pending).to_have_count(0)
    turn = chat.locator('.chat-turn[data-turn="2"] .chat-msg-user')
    expect(turn.locator(".chat-msg-text")).to_have_text("What do these show?")
    thumbs = turn.locator(".boonb-thumb")
    expect(thumbs).to_have_count(2)
    expect(turn.locator('.boonb-thumb[data-state="ready"]')).to_have_count(2, timeout=15_000)
    expect(turn.locator(".boonb-thumbs")).to_have_class("boonb-thumbs cols-2")
    expect(chat).to_have_attribute("data-state", "awaiting_input", timeout=30_000)
    nb.wait_for_kernel_value(
        "sent_images()",
        repr("|".join(sorted(f"data:image/png;base64 {sha(d)}" for d in (wide, tall)))),
    )
    # Found and measured in one script from the chat's root: ``evaluate_all`` finds the
    # elements in one call and measures them in another, and a turn repainted in between
    # leaves detached boxes that measure 0x0 (two CI runs).
    sizes = chat.evaluate(
        "root => [...root.querySelectorAll("
        "'.chat-turn[data-turn=\"2\"] .chat-msg-user .boonb-thumb')].map((el) => {"
        " const r = el.getBoundingClientRect(); const img = el.querySelector('img');"
        " return [r.width, r.height, img.naturalWidth, img.naturalHeight]; })"
    )
    for (width, height, natural_w, natural_h), (w, h) in zip(
        sizes, [(1200, 800), (400, 600)], strict=True
    ):
        assert 0 < width <= 300, sizes
        assert abs(width / height - w / h) < 0.02, sizes  # aspect kept
        assert natural_w <= 600 and abs(natural_w / natural_h - w / h) < 0.02, sizes
    shot(chat, "chat-light")

    # The lightbox: the full image; Escape closes it and focus goes back to the thumbnail.
    thumbs.nth(0).locator(".boonb-thumb-open").click()
    box = page.locator(".boonb-lightbox")
    expect(box).to_be_visible()
    image = box.locator(".boonb-lightbox-img")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('.boonb-lightbox-img')?.naturalWidth === 1200"
    )
    shot(page, "lightbox-light")
    page.keyboard.press("Escape")
    expect(box).to_have_count(0)
    focused = page.evaluate(
        "() => document.activeElement?.closest('.boonb-thumb')?.dataset.sha256 ?? null"
    )
    assert focused == sha(wide)
    thumbs.nth(1).locator(".boonb-thumb-open").click()
    box.locator(".boonb-lightbox-close").click()
    expect(box).to_have_count(0)

    # A stored file gone: the thumbnail is a broken placeholder with Retry, which works
    # once the file is back.
    kept = tmp_path / "kept"
    kept.mkdir()
    for path in stored(lab).rglob(f"{sha(tall)}*"):
        shutil.move(path, kept / path.name)
    nb.reload()
    chat = chat_of(nb.output(1))
    broken = chat.locator(f'.boonb-thumb[data-sha256="{sha(tall)}"]')
    expect(broken).to_have_attribute("data-state", "error", timeout=15_000)
    expect(broken.locator(".boonb-thumb-retry")).to_be_visible()
    expect(chat.locator(f'.boonb-thumb[data-sha256="{sha(wide)}"]')).to_have_attribute(
        "data-state", "ready"
    )
    shot(chat, "broken-light")

    nb.set_theme("dark")
    shot(chat, "broken-dark")
    for path in kept.iterdir():
        shutil.move(path, stored(lab) / path.name)
    broken.locator(".boonb-thumb-retry").click()
    expect(broken).to_have_attribute("data-state", "ready", timeout=15_000)
    shot(chat, "chat-dark")
    chat.locator(".chat-attach-picker").set_input_files(str(picked))
    expect(chat.locator('.chat-pending-item[data-state="ready"]')).to_have_count(1)
    shot(chat, "pending-dark")
    chat.locator(".chat-pending-remove").click()
    expect(chat.locator(".chat-pending-item")).to_have_count(0)
    chat.locator(".boonb-thumb-open").first.click()
    expect(page.locator(".boonb-lightbox")).to_have_attribute("data-theme", "dark")
    page.wait_for_function(
        "() => document.querySelector('.boonb-lightbox-img')?.naturalWidth === 1200"
    )
    shot(page, "lightbox-dark")
    page.keyboard.press("Escape")
    expect(page.locator(".boonb-lightbox")).to_have_count(0)

    # After a kernel restart, the resumed chat shows its images from the store.
    chat_id = chat.get_attribute("data-chat-id")
    assert chat_id is not None
    nb.restart_kernel()
    resumed = chat_of(nb.run_cell(f"%load_ext boonb\n%agent resume {chat_id[:8]}"))
    again = resumed.locator('.chat-turn[data-turn="2"] .boonb-thumb[data-state="ready"]')
    expect(again).to_have_count(2, timeout=15_000)


def test_a_file_that_is_no_image_shows_the_kernels_refusal_and_nothing_is_sent(
    notebook: NotebookFactory, lab: LabServer, tmp_path: Path
) -> None:
    nb = notebook.open("chat-images-refused.ipynb")
    chat = start_chat(nb)
    fake = tmp_path / "report.png"
    fake.write_bytes(b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 100)
    before = nb.kernel_value("len(sim.requests)")
    files_before = set(stored(lab).rglob("*"))

    chat.locator(".chat-attach-picker").set_input_files(str(fake))
    refusal = chat.locator(".chat-attach-error")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("report.png")
    expect(refusal).to_contain_text("PDF")
    expect(chat.locator(".chat-pending-item")).to_have_count(0)
    assert set(stored(lab).rglob("*")) == files_before
    assert nb.kernel_value("len(sim.requests)") == before
    shot(chat, "refused-light")

    chat.locator(".chat-input").fill("Text only, then.")
    chat.locator(".chat-send").click()
    expect(chat.locator('.chat-turn[data-turn="2"] .chat-msg-user')).to_contain_text("Text only")
    expect(chat).to_have_attribute("data-state", "awaiting_input", timeout=30_000)
    expect(refusal).to_be_hidden()
    assert nb.kernel_value("sent_images()") == "''"

    # A pasted screenshot is attached too, and the remove button takes it off again.
    chat.locator(".chat-input").evaluate(
        """(el, b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], "image.png", { type: "image/png" }));
          const init = { clipboardData: transfer, bubbles: true, cancelable: true };
          el.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        base64.b64encode(png((320, 200), "crimson")).decode("ascii"),
    )
    pasted = chat.locator('.chat-pending-item[data-name="image.png"]')
    expect(pasted).to_have_attribute("data-state", "ready")
    expect(chat.locator(".chat-input")).to_have_value("")  # the bytes did not go in as text
    pasted.locator(".chat-pending-remove").click()
    expect(chat.locator(".chat-pending-item")).to_have_count(0)
    expect(chat).to_have_attribute("data-attachments", "0")


def test_an_image_in_a_model_calls_request_shows_as_a_thumbnail_in_the_trace_viewer(
    notebook: NotebookFactory, page: Page
) -> None:
    nb = notebook.open("trace-images.ipynb")
    nb.run_cell(
        SETUP + "from PIL import Image\nImage.new('RGB', (900, 600), 'purple').save('chart.png')"
    )
    nb.run_cell("%%agent --max-turns 2 --image chart.png\nWhat is in the chart?")
    viewer = nb.run_cell("%traces").locator(".boonb-traceviewer")
    expect(viewer).to_have_attribute("data-ready", "true")
    viewer.locator('.tv-trace[data-kind="model"]').first.click()
    detail = viewer.locator(".tv-detail")
    expect(detail).to_have_attribute("data-detail", "loaded")
    user = detail.locator('.tv-request .tv-message[data-role="user"]')
    expect(user).to_contain_text("What is in the chart?")
    thumb = user.locator(".boonb-thumb")
    expect(thumb).to_have_attribute("data-state", "ready", timeout=15_000)
    assert 0 < thumb.bounding_box()["width"] <= 300  # type: ignore[index]
    assert "base64" not in detail.inner_text() and "data:image" not in detail.inner_text()
    shot(viewer, "traceviewer-light")
    thumb.locator(".boonb-thumb-open").click()
    page.wait_for_function(
        "() => document.querySelector('.boonb-lightbox-img')?.naturalWidth === 900"
    )
    page.keyboard.press("Escape")
    expect(page.locator(".boonb-lightbox")).to_have_count(0)
    nb.set_theme("dark")
    shot(viewer, "traceviewer-dark")
