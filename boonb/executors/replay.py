"""The kernel's end of a remote agent: the worker's items become this kernel's frames and rows.

:class:`Replay` applies each run's items in ``seq`` order, on the engine thread, through
the parts a local agent uses: frames go on the kernel's bus (so the store's writer, the
views, task progress, workflow budgets and the trace export see them as local frames),
``chat`` and ``message`` items go through a kernel-side ``Recorder`` (the same code builds
the rows, with this kernel's session id), and snapshots through a ``SessionSaver`` (the
kernel owns the session: its rows name this process, and ``session_saved`` frames go out
once they are on disk). What a worker sends can only touch its own run's chat: other
frame types, and frames of another chat, are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from boonb.agent.factory import AgentFactory
from boonb.agent.recorder import Recorder, TraceParent
from boonb.agent.sessions import SessionSaver, adopted
from boonb.errors import ExecutorError
from boonb.executors import wire
from boonb.executors.spec import AgentRunSpec
from boonb.frames import (
    ErrorFrame,
    Frame,
    MessageComplete,
    MessageDelta,
    ModelCallComplete,
    ToolTraceComplete,
    ToolTraceStart,
    TurnComplete,
    TurnStart,
)

log = logging.getLogger("boonb.executors.replay")

FINISH_TIMEOUT_S = 10.0
"""How long :meth:`Replay.finished` waits, from the run's reply, for the items it follows
(the design's decision 4); also how long a lost run's late items are still applied."""


@dataclass(eq=False)
class _Run:
    """One remote run as the kernel sees it: where its rows go, and how far it got."""

    chat_id: uuid.UUID
    recorder: Recorder
    saver: SessionSaver
    applied: int = 0
    """Items applied so far: 1..applied, with no gap."""
    early: dict[int, wire.Item] = field(default_factory=dict)
    """Items that arrived before one they follow, by seq."""
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    last_snapshot: dict[str, Any] | None = None
    lost: bool = False


class Replay:
    """Applies batches of remote runs' items in this kernel (call it on the engine thread).

    ``begin(spec)`` before a run is sent; ``feed(batch)`` for every batch that arrives;
    ``await finished(run_id, reply["last_seq"])`` before the run's result is used;
    ``lost(run_id, why)`` when its worker died; ``forget(run_id)`` at the end. A lost
    run is followed for ``grace_s`` more seconds after ``forget``: its worker's last
    batches travel through the scheduler and can arrive after the error.
    """

    def __init__(self, factory: AgentFactory, *, grace_s: float = FINISH_TIMEOUT_S) -> None:
        self.factory = factory
        self.grace_s = grace_s
        self._runs: dict[str, _Run] = {}

    def begin(self, spec: AgentRunSpec) -> None:
        """Expect the items of ``spec``'s run (its run id is ``str(spec.chat_id)``)."""
        store = self.factory.store()
        parent = (
            TraceParent(spec.parent_trace_id, spec.parent_root_id)
            if spec.parent_trace_id is not None and spec.parent_root_id is not None
            else None
        )
        recorder = Recorder(
            self.factory.bus,
            store.writer.enqueue,
            session_id=self.factory.session_id,
            chat_id=spec.chat_id,
            agent_id=spec.agent_id,
            workflow_run_id=spec.workflow_run_id,
            parent=parent,
        )
        saver = SessionSaver(store, self.factory.bus.publish)
        self._runs[str(spec.chat_id)] = _Run(spec.chat_id, recorder, saver)

    def feed(self, message: Any) -> None:
        """Apply a batch: each run's items in order, holding back those that came early.

        A batch this kernel cannot read, and items of runs it does not know (never begun,
        or forgotten), are dropped with a log line.
        """
        try:
            items = wire.items_of(message)
        except wire.WireError as exc:
            log.warning("boonb: dropped a batch from a Dask worker: %s", exc)
            return
        unknown: Counter[str] = Counter()
        for item in items:
            run = self._runs.get(item.run_id)
            if run is None:
                unknown[item.run_id] += 1
            else:
                self._take(run, item)
        for run_id, count in unknown.items():
            log.info(
                "boonb: dropped %d items of agent run %s, which this kernel does not "
                "follow (it ended here or never began)",
                count,
                run_id,
            )

    async def finished(self, run_id: str, last_seq: int, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Wait until the run's items up to ``last_seq`` are applied.

        The reply of a run can overtake its items. Raises ``ExecutorError`` after
        ``timeout`` seconds, having applied what arrived (past the missing items).
        """
        run = self._runs.get(run_id)
        if run is None:
            raise ExecutorError(f"agent run {run_id} is not followed by this kernel")
        if run.applied >= last_seq:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run.waiters.append((last_seq, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            log.warning(
                "boonb: agent run %s: %d of its %d items arrived in order within %g s",
                run_id,
                run.applied,
                last_seq,
                timeout,
            )
            self._past_gaps(run)
            raise ExecutorError(
                f"the record of agent run {run_id} did not all arrive from its Dask worker "
                f"within {timeout:g} s ({run.applied} of {last_seq} items); what arrived is "
                "kept. Check that the cluster's scheduler is healthy, then retry"
            ) from None
        finally:
            run.waiters = [(seq, w) for seq, w in run.waiters if w is not waiter]

    def lost(self, run_id: str, why: str) -> None:
        """The run's worker died: save its session as ``failed`` (its last snapshot)."""
        run = self._runs.get(run_id)
        if run is None:
            return
        run.lost = True
        log.warning("boonb: agent run %s was lost with its worker: %s", run_id, why)
        if run.last_snapshot is not None:
            run.saver.save(_failed(run.last_snapshot), final=True)

    def forget(self, run_id: str) -> None:
        """Stop following the run; items of it that still arrive are dropped.

        A lost run is followed for ``grace_s`` more (on this loop): its late items are
        applied in order as they come, and at the end those held behind items that never
        came are applied too.
        """
        run = self._runs.get(run_id)
        if run is None:
            return
        if run.lost:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on: forget it now
                pass
            else:
                loop.call_later(self.grace_s, self._drop, run_id, run)
                return
        self._drop(run_id, run)

    def _drop(self, run_id: str, run: _Run) -> None:
        if self._runs.get(run_id) is not run:
            return  # begun again since
        del self._runs[run_id]
        if run.lost:
            self._past_gaps(run)
        for _, waiter in run.waiters:
            if not waiter.done():  # its caller was not cancelled: say why the wait ended
                waiter.set_exception(
                    ExecutorError(f"agent run {run_id} is no longer followed by this kernel")
                )

    def following(self) -> list[str]:
        """The runs whose items this replay applies."""
        return list(self._runs)

    # Applying.

    def _take(self, run: _Run, item: wire.Item) -> None:
        if item.seq <= run.applied or item.seq in run.early:
            return  # sent twice (or after its gap was given up on): applied once
        run.early[item.seq] = item
        self._in_order(run)

    def _in_order(self, run: _Run) -> None:
        while run.applied + 1 in run.early:
            # Counted before it is applied: whatever applying it does, the run goes on.
            run.applied += 1
            self._apply(run, run.early.pop(run.applied))
        for seq, waiter in run.waiters:
            if seq <= run.applied and not waiter.done():
                waiter.set_result(None)

    def _past_gaps(self, run: _Run) -> None:
        """Apply the items held behind missing ones (in ``seq`` order): those are lost."""
        while run.early:
            first = min(run.early)
            if first > run.applied + 1:
                log.warning(
                    "boonb: agent run %s: items %d to %d never arrived; applying the %d "
                    "that came after them",
                    run.chat_id,
                    run.applied + 1,
                    first - 1,
                    len(run.early),
                )
                run.applied = first - 1
            self._in_order(run)

    def _apply(self, run: _Run, item: wire.Item) -> None:
        try:
            match item.kind:
                case "frame":
                    self._frame(run, wire.frame_of(item.data))
                case "chat":
                    chat = wire.json_of(item.data)
                    run.recorder.chat_started(
                        provider=chat["provider"], model=chat["model"], title=chat["title"]
                    )
                case "message":
                    sent = wire.json_of(item.data)
                    run.recorder.message(sent["message"], turn_number=sent["turn_number"])
                case "snapshot":
                    self._snapshot(run, wire.json_of(item.data))
                case "end":
                    pass  # its seq is the reply's last_seq: finished() waits for it
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "boonb: agent run %s: dropped item %d (%s) that does not fit: %s",
                item.run_id,
                item.seq,
                item.kind,
                exc,
            )
        except Exception:  # bytes from another process must never stop this kernel's replay
            log.exception(
                "boonb: agent run %s: dropped item %d (%s) that could not be applied",
                item.run_id,
                item.seq,
                item.kind,
            )

    def _frame(self, run: _Run, frame: Frame) -> None:
        if not _claim(frame, run.chat_id, self.factory.session_id):
            log.warning(
                "boonb: agent run %s sent a %s frame that is not its own; dropped",
                run.chat_id,
                frame.type,
            )
            return
        self.factory.bus.publish(frame)

    def _snapshot(self, run: _Run, sent: dict[str, Any]) -> None:
        snap = adopted(
            sent["snapshot"],
            agent_session_id=run.saver.agent_session_id,
            session_id=self.factory.session_id,
        )
        if snap["chat_id"] != str(run.chat_id):
            raise ValueError(f"a snapshot of chat {snap['chat_id']}")
        run.last_snapshot = snap
        if run.lost:  # a late item of a lost run: the session stays failed
            snap, final = _failed(snap), True
        else:
            final = bool(sent["final"])
        run.saver.save(snap, final=final)


def _claim(frame: Frame, chat_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """Whether ``frame`` is one an agent of ``chat_id`` publishes; makes it this session's."""
    match frame:
        case ToolTraceStart():
            frame.session_id = session_id
            return frame.chat_id == chat_id
        case ToolTraceComplete() | ModelCallComplete():
            frame.trace.session_id = session_id
            return frame.trace.chat_id == chat_id
        case MessageDelta() | MessageComplete() | TurnStart() | TurnComplete() | ErrorFrame():
            return frame.chat_id == chat_id
        case _:  # sessions, tasks and workflows are the kernel's to announce
            return False


def _failed(snap: dict[str, Any]) -> dict[str, Any]:
    return {**snap, "state": "failed", "phase": "idle"}
