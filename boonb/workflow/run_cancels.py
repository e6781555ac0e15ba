"""Carry out the cancels other processes (the server's side panel) ask of this kernel's runs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from boonb.config import Settings
from boonb.errors import BoonbError
from boonb.store import Store
from boonb.store.requests_from_server import asked_run_cancels
from boonb.workflow.live_runs import LiveRuns

log = logging.getLogger(__name__)


async def poll_cancels(
    runs: LiveRuns,
    *,
    store: Callable[[], Store],
    settings: Callable[[], Settings],
    cancel: Callable[[uuid.UUID], object],
) -> None:
    """Every poll interval, ``cancel`` each of ``runs`` another process asked to cancel.

    Runs for the manager's life from its first run; the table is read only while one
    of this kernel's runs is pending or running. ``store`` and ``settings`` are read at
    each poll, as the user can change them at run time.
    """
    while True:
        await asyncio.sleep(settings().background_poll_interval_s)
        if not runs.any_open():
            continue
        try:
            asked = await asyncio.to_thread(asked_run_cancels, store().db, runs.session_id)
        except BoonbError as exc:  # a locked or full database: ask again at the next poll
            log.warning("workflow runs: could not read the cancels asked: %s", exc)
            continue
        except Exception:  # never let the poll die silently
            log.exception("workflow runs: polling for cancels failed")
            continue
        for run_id in asked:
            if run_id in runs:
                cancel(run_id)
