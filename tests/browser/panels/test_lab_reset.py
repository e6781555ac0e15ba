"""A side panel whose frames cursor the server refuses shows its view afresh.

The server refuses a cursor when the project's database was replaced or created after the
panel opened; frames may have been missed, so the REST model says ``rest:reset`` and the
panel (a main-area panel, or the sidebar's tasks pane) builds its view again, reading what
it shows anew. The refusal is the server's own answer to such a cursor, given once to the
panel's next poll.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect

from ..lab_server import LabServer

LONG_MS = 60_000
#: The refused poll comes a second after the first answer; the rebuild at once after it.
AGAIN_MS = 20_000
REFUSED = {
    "error": {
        "type": "InvalidCursor",
        "message": "after is not a cursor of this view and target; poll without after",
    }
}
OPEN = "(id) => { void window.jupyterapp.commands.execute(id); }"


@pytest.mark.parametrize(
    ("view", "command", "shown"),
    [
        ("orchestrator", "boonb:open-orchestrator", '.boonb-lab-panel[data-panel="orchestrator"]'),
        ("tasks", "boonb:open-sidebar", '#boonb-sidebar .boonb-sb-section[data-section="tasks"]'),
    ],
)
def test_a_panel_whose_cursor_is_refused_reads_its_view_again(
    page: Page, lab: LabServer, view: str, command: str, shown: str
) -> None:
    refused: list[str] = []

    def live(route: Route) -> None:
        # The panel polls only while something it shows runs: say something does.
        answer = route.fetch()
        body: dict[str, Any] = answer.json()
        if body.get("frames") is not None:
            body["frames"]["live"] = True
        route.fulfill(response=answer, json=body)

    def refuse_once(route: Route, request: Request) -> None:
        if "after=" in request.url and not refused:
            refused.append(request.url)
            route.fulfill(status=400, json=REFUSED)
        else:
            route.fallback()

    def first_request(request: Request) -> bool:
        """The view's first request: it asks for the first poll's cursor with its answer."""
        if request.method != "POST" or not request.url.endswith(f"/boonb/api/views/{view}"):
            return False
        return bool(json.loads(request.post_data or "{}").get("frames"))

    page.route(f"**/boonb/api/views/{view}", live)
    page.route(f"**/boonb/api/views/{view}/frames*", refuse_once)
    with page.expect_request(first_request, timeout=LONG_MS):
        page.evaluate(OPEN, command)
    # Its next poll is refused: the view is built again and asks for what it shows anew.
    with page.expect_request(first_request, timeout=AGAIN_MS):
        pass
    page.unroute_all(behavior="ignoreErrors")

    assert len(refused) == 1
    expect(page.locator(shown).locator(f".boonb-{view}")).to_have_count(1)
