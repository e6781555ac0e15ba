"""Fixtures for real-browser tests: ``lab``, ``browser``, ``page``, ``notebook``.

One JupyterLab server and one Chromium per session (both cost seconds on a 2-core machine);
a fresh browser context, Lab workspace, notebook folder and kernel per test. Chromium is
Debian's (``scripts/ensure-chromium``): Playwright's own browser download is not reachable
from these machines, and a missing browser is a setup error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from .lab_page import HELPER_JS, NotebookFactory, PageRecorder, ScreenshotFn, open_lab, safe_name
from .lab_server import LabServer, start_lab

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"
BROWSER_DIR = Path(__file__).resolve().parent

#: Override with BOONB_TEST_CHROMIUM to use another Chromium build (e.g. on a laptop).
CHROMIUM = os.environ.get("BOONB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Containers often mount a 64 MB /dev/shm, which crashes renderers; use /tmp instead.
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 900}
DEFAULT_TIMEOUT_MS = 30_000

_RECORDER = pytest.StashKey[tuple[PageRecorder, Page]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real JupyterLab in headless Chromium (tests/browser)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Hooks of this conftest see the whole session's items; mark only ours.
    for item in items:
        if BROWSER_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, save a screenshot and the console log before fixtures tear down.

    Done here rather than in the ``page`` teardown so the picture shows the page as the test
    left it, not after its kernel was shut down.
    """
    report = yield
    recorded = item.stash.get(_RECORDER, None)
    if report.failed and recorded is not None and call.when in ("setup", "call"):
        recorder, page = recorded
        lines = []
        try:
            lines.append(f"screenshot: {recorder.screenshot(page, f'failed-{call.when}')}")
        except Exception as exc:  # the page may have crashed: say so, keep the real failure
            lines.append(f"screenshot failed: {exc!r}")
        lines.append(f"console log: {recorder.dump_console(f'failed-{call.when}')}")
        if recorder.console_errors:
            lines.append("console errors:")
            lines.extend(f"  {e}" for e in recorder.console_errors[-20:])
        report.sections.append(("browser artifacts", "\n".join(lines)))
    return report


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A real JupyterLab server on loopback, shared by the session.

    ``lab.url``, ``lab.token``, ``lab.root`` (server root = kernels' BOONB_PROJECT) and
    ``lab.api(method, path, **httpx_kwargs)``. Kernels get no API keys, so boonb uses its
    simulator.
    """
    base = tmp_path_factory.mktemp("lab")
    server = start_lab(root=base / "root", state_dir=base / "state")
    try:
        yield server
    finally:
        server.stop()


# Playwright's sync API keeps an event loop marked running on the main thread while it is
# open, and asyncio.run then refuses to start there: it is open for one module at a time,
# so the tests a worker runs after a browser module can use asyncio.run.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium. A missing binary fails the run: run scripts/ensure-chromium."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. The browser tests need Debian's chromium: "
            "run `sudo scripts/ensure-chromium` (or set BOONB_TEST_CHROMIUM to a Chromium binary).",
            pytrace=False,
        )
    chromium = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def browser_recorder(request: pytest.FixtureRequest) -> PageRecorder:
    """Console errors/log and screenshot paths for this test."""
    return PageRecorder(test_name=request.node.name, artifacts_dir=ARTIFACTS_DIR)


@pytest.fixture
def page(
    request: pytest.FixtureRequest,
    browser: Browser,  # before `lab`: a missing Chromium fails without starting a server
    lab: LabServer,
    browser_recorder: PageRecorder,
) -> Iterator[Page]:
    """A new browser context + page, logged in to Lab, in a workspace of its own.

    A failing test leaves ``test-artifacts/browser/<test>-failed-<phase>.png`` and
    ``.console.txt``. Settings the test changed (e.g. the theme) are reset afterwards.
    """
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.add_init_script(HELPER_JS)
    lab_page = context.new_page()
    browser_recorder.attach(lab_page)
    request.node.stash[_RECORDER] = (browser_recorder, lab_page)
    try:
        workspace = f"{safe_name(request.node.name)}-{uuid.uuid4().hex[:8]}"
        open_lab(lab_page, lab, workspace=workspace)
        yield lab_page
    finally:
        context.close()
        lab.reset_user_settings()


@pytest.fixture
def console_errors(page: Page, browser_recorder: PageRecorder) -> list[str]:
    """Console errors and uncaught exceptions of this test's page, appended live."""
    return browser_recorder.console_errors


@pytest.fixture
def screenshot(page: Page, browser_recorder: PageRecorder) -> ScreenshotFn:
    """``screenshot(label)`` saves ``test-artifacts/browser/<test>-<label>.png``."""
    return lambda label: browser_recorder.screenshot(page, label)


@pytest.fixture
def notebook(
    request: pytest.FixtureRequest, page: Page, lab: LabServer, browser_recorder: PageRecorder
) -> Iterator[NotebookFactory]:
    """``notebook.open(name)`` -> :class:`~tests.browser.lab_page.Notebook` with an idle kernel.

    The test's kernels are shut down afterwards.
    """
    factory = NotebookFactory(
        page=page,
        lab=lab,
        recorder=browser_recorder,
        folder=f"{safe_name(request.node.name)}-{uuid.uuid4().hex[:6]}",
    )
    try:
        yield factory
    finally:
        factory.close()
