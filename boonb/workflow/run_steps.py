"""A workflow run's steps and log lines: each agent call's label, step frames and log.

Each call of an agent is a step of its own (``workflow:step``), keyed by its ``agent`` row's
id and named by a label unique in the run: the agent's id when it is called once, else the
id and the call's number (``analyst #2``). The label is the ``agent`` row's name, the
step's and its log lines', so the tree, the steps and the log agree. The run keeps its
steps and log lines (:attr:`RunSteps.steps`, :attr:`RunSteps.logs`) for its pane.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from time import perf_counter
from typing import Literal

from pydantic import JsonValue

from boonb.bus import Bus
from boonb.frames import StepState, WorkflowLog, WorkflowStep, utcnow

PREVIEW_CHARS = 200
"""Characters of an agent's input a step shows."""


class RunSteps:
    """The steps and log lines of run ``run_id``, each published on ``bus`` as it changes."""

    def __init__(self, run_id: uuid.UUID, *, bus: Bus) -> None:
        self.run_id = run_id
        self.bus = bus
        self.steps: dict[uuid.UUID, WorkflowStep] = {}
        """Every step as last sent, by ``trace_id``, in the order they started."""
        self.logs: list[WorkflowLog] = []
        """Every line logged, in order (``seq`` 1, 2, ...)."""
        self._calls: Counter[str] = Counter()
        self._last_log: dict[uuid.UUID, str] = {}

    def labels(self, agent_ids: Sequence[str]) -> list[tuple[str, int]]:
        """Each next call's label and number: calls of one agent are told apart by number.

        An agent called once so far, and once in this batch, is labelled by its id; any
        other call by its id and number (a batch calling ``analyst`` three times gets
        ``analyst #1`` to ``#3``).
        """
        in_batch = Counter(agent_ids)
        numbered = []
        for agent_id in agent_ids:
            self._calls[agent_id] += 1
            n = self._calls[agent_id]
            label = agent_id if n == 1 and in_batch[agent_id] == 1 else f"{agent_id} #{n}"
            numbered.append((label, n))
        return numbered

    def log(
        self,
        message: str,
        *,
        phase: str | None,
        agent_id: str | None = None,
        step: WorkflowStep | None = None,
        level: Literal["info", "error"] = "info",
    ) -> None:
        """Log a line of the run, about one step when ``step`` is given, else in ``phase``."""
        line = WorkflowLog(
            run_id=self.run_id,
            phase=step.phase if step is not None else phase,
            agent_id=step.agent_id if step is not None else agent_id,
            message=message,
            at=utcnow(),
            seq=len(self.logs) + 1,
            label=step.label if step is not None else None,
            trace_id=step.trace_id if step is not None else None,
            level=level,
        )
        self.logs.append(line)
        if step is not None and step.trace_id is not None:
            self._last_log[step.trace_id] = message
        self.bus.publish(line)

    def end(
        self,
        step: WorkflowStep,
        state: StepState,
        *,
        started: float,
        tokens_used: int,
        error: str | None = None,
    ) -> None:
        """Send a step's last frame: ``state``, its tokens, time since ``started``, last log."""
        assert step.trace_id is not None
        self.send(
            replace(
                step,
                state=state,
                tokens_used=tokens_used,
                error=error,
                finished_at=datetime.now(UTC),
                duration_ms=(perf_counter() - started) * 1000,
                last_log=self._last_log.pop(step.trace_id, None),
            )
        )

    def send(self, step: WorkflowStep) -> None:
        assert step.trace_id is not None
        self.steps[step.trace_id] = step
        self.bus.publish(step)


def as_prompt(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def preview(value: JsonValue) -> str | None:
    """The first line of an input, cut to :data:`PREVIEW_CHARS`."""
    if value is None:
        return None
    text = as_prompt(value).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"
