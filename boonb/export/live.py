"""Live export: finished calls from the bus become spans on threads of their own.

On the agent's thread the exporter's cost is one bus subscriber call: a flag and length
check and a ``deque.append`` (see ``benchmarks/bench_otel.py``). Everything else happens
on two threads: the builder wakes on a short timer (or at once on
:meth:`LiveExport.flush`) and turns what it drained into spans at once, so the rows and
their payloads are freed; the sender sends the spans in batches, and is the only thread
that ever waits on the endpoint.

While the endpoint is slow, built spans pile up to ``max_queue`` (and finished calls in
the queue up to as many); past it they are dropped and counted, as are the spans of a
batch the endpoint did not accept (the OTLP exporter already retried it within its
timeout). Once a batch gets nothing through, export stops trying: what is waiting is
counted dropped without being sent, and new calls are counted dropped at the subscriber
(one flag read), so a blackholed endpoint costs neither a timeout per batch nor memory. Every
``probe_interval`` seconds the next calls are let through as a probe; when they get
through, export resumes. The user is told once when export starts failing, and once when
it works again; ``%boonb`` shows the counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol
from uuid import UUID

from boonb.export.agents import AgentChats
from boonb.export.content import Redactor
from boonb.export.spans import SpanData, SpanOptions, span_of
from boonb.export.target import ExportTarget
from boonb.frames import Frame, ModelCallComplete, ToolTraceComplete, TraceRecord

log = logging.getLogger("boonb.export")

EXPORTED_FRAME_TYPES = frozenset({"tool_trace:complete", "model_call:complete"})
"""The frames that carry a finished ``tool_traces`` row (run, phase and agent rows too)."""
WAKE_INTERVAL_S = 0.5
SEND_AT = 512
"""Spans built before a batch is sent, without waiting for the queue to empty."""
PROBE_INTERVAL_S = 10.0
"""While the endpoint fails, how often the next finished calls are sent to try it again."""


class SpanSender(Protocol):
    """What the export needs of an OTLP exporter (:class:`boonb.export.sdk.OtlpSender`)."""

    def send(self, spans: Sequence[SpanData]) -> int: ...

    def shutdown(self) -> None: ...


ProviderOf = Callable[[UUID], str | None]


def span_options(target: ExportTarget) -> SpanOptions:
    redact = Redactor(target.secrets) if target.secrets else None
    return SpanOptions(
        capture_content=target.capture_content,
        redact=redact,
        max_attribute_chars=target.max_attribute_chars,
    )


class _Marker:
    """Put in the queue by :meth:`LiveExport.flush`; set once all before it is handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class LiveExport:
    """Exports the kernel's finished calls as they happen: subscribe :meth:`on_frame` to the bus.

    ``provider_of`` names the provider a chat runs on (its model calls' spans carry it);
    ``notify`` tells the user, in plain words, when export fails and when it recovers.
    """

    def __init__(
        self,
        target: ExportTarget,
        sender: SpanSender,
        *,
        provider_of: ProviderOf,
        notify: Callable[[str], None],
        wake_interval: float = WAKE_INTERVAL_S,
        probe_interval: float = PROBE_INTERVAL_S,
    ) -> None:
        self.target = target
        self.sender = sender
        self.provider_of = provider_of
        self.notify = notify
        self.wake_interval = wake_interval
        self.probe_interval = probe_interval
        self.max_queue = target.max_queue
        self.spans_sent = 0
        self.overflowed = 0
        """Finished calls dropped at the queue (it was full)."""
        self.refused = 0
        """Spans the endpoint did not accept (or that could not be built)."""
        self.skipped = 0
        """Finished calls dropped unsent while the endpoint was failing (between probes)."""
        self.backlogged = 0
        """Spans built but dropped because the sender was behind by ``max_queue`` spans."""
        self.failing = False
        self._accepting = True
        """False while failing, between probes: the subscriber then only counts."""
        self._failed_at = 0.0
        self._options = span_options(target)
        self._agent_chats = AgentChats()  # used by the builder thread only
        self._queue: deque[Frame | TraceRecord | _Marker] = deque()
        self._wake = threading.Event()
        # Built spans waiting for the sender thread, in batches; a condition, as two
        # threads count them.
        self._outbox: deque[list[SpanData] | _Marker | None] = deque()
        self._outbox_spans = 0
        self._outbox_ready = threading.Condition()
        self._closed = False
        self._told_overflow = False
        self._builder = threading.Thread(
            target=self._build_loop, name="boonb-otel-build", daemon=True
        )
        self._sender = threading.Thread(target=self._send_loop, name="boonb-otel-send", daemon=True)
        self._builder.start()
        self._sender.start()

    @property
    def spans_dropped(self) -> int:
        return self.overflowed + self.refused + self.skipped + self.backlogged

    def on_frame(self, frame: Frame) -> None:
        """The bus subscriber: queue a finished call, or count it dropped.

        Dropped when the queue is full, or while the endpoint is failing (between probes).
        """
        queue = self._queue
        if self._accepting and len(queue) < self.max_queue:
            # A tool call's row is queued without its frame, as the writer queues it: the
            # frame is then freed at once and its memory reused by the next call, which
            # halves the subscriber's cost on the agent's thread (benchmarks/bench_otel.py).
            queue.append(frame.trace if type(frame) is ToolTraceComplete else frame)
        else:
            # Not under a lock: agents publish from the engine thread, and a count off by
            # one from a rare second publisher is not worth a lock on every call.
            self.overflowed += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent or dropped; False on timeout."""
        if not (self._builder.is_alive() and self._sender.is_alive()):
            return not self._queue and not self._outbox
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Send what is queued (for at most ``timeout``), then stop both threads.

        The sender thread shuts the OTLP exporter down itself when it ends, so a send
        still under way when ``timeout`` passes is never cut off by a shutdown from here.
        """
        self._closed = True
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._builder.join(timeout)
        self._sender.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def describe(self) -> str:
        """For ``%boonb``: where spans go, and how many were sent and dropped."""
        text = (
            f"OpenTelemetry {self.target.describe()}: {self.spans_sent} spans sent, "
            f"{self.spans_dropped} dropped"
        )
        return text + (" (the endpoint is not accepting them)" if self.failing else "")

    # The builder thread: finished calls become spans at once, so a slow endpoint holds
    # spans (small without content), not whole rows with their inputs and outputs.

    def _build_loop(self) -> None:
        try:
            while True:
                self._wake.wait(self.wake_interval)
                self._wake.clear()
                closing = self._closed
                if not self._accepting and self._probe_due():
                    self._accepting = True  # the next calls go out: they are the probe
                try:
                    self._drain()
                except Exception:  # never die silently: the next wake tries again
                    log.exception("otel export: draining the queue failed")
                if closing:
                    return
        finally:
            self._post(None)  # tells the sender thread to finish

    def _probe_due(self) -> bool:
        return time.monotonic() - self._failed_at >= self.probe_interval

    def _drain(self) -> None:
        queue = self._queue
        batch_size = min(SEND_AT, self.max_queue)
        spans: list[SpanData] = []
        while queue:
            item = queue.popleft()
            if isinstance(item, _Marker):
                self._post(spans)
                self._post(item)
                spans = []
                continue
            if not self._accepting:  # failing: count, do not build or send
                self.skipped += 1
                continue
            span = self._span(item)
            if span is not None:
                spans.append(span)
            if len(spans) >= batch_size:
                self._post(spans)
                spans = []
        self._post(spans)
        if (self.overflowed or self.backlogged) and not self._told_overflow:
            self._told_overflow = True
            self.notify(
                f"boonb: trace export to {self.target.describe()} cannot keep up; "
                f"{self.overflowed + self.backlogged} finished calls were dropped so far "
                "(agents are not affected). %boonb shows the count; raise otel_max_queue "
                "to keep more."
            )

    def _post(self, item: list[SpanData] | _Marker | None) -> None:
        """Hand a batch (or a flush marker, or None: the end) to the sender thread."""
        with self._outbox_ready:
            if isinstance(item, list):
                if not item:
                    return
                if self._outbox_spans + len(item) > self.max_queue:
                    self.backlogged += len(item)
                    return
                self._outbox_spans += len(item)
            self._outbox.append(item)
            self._outbox_ready.notify()

    # The sender thread: the only one that waits on the endpoint.

    def _send_loop(self) -> None:
        try:
            while True:
                with self._outbox_ready:
                    self._outbox_ready.wait_for(lambda: bool(self._outbox))
                    item = self._outbox.popleft()
                    if isinstance(item, list):
                        self._outbox_spans -= len(item)
                if item is None:
                    return
                if isinstance(item, _Marker):
                    item.done.set()
                    continue
                try:
                    self._send(item)
                except Exception:  # never die silently: the next batch tries again
                    log.exception("otel export: sending a batch failed")
        finally:
            self.sender.shutdown()

    def _span(self, item: Frame | TraceRecord) -> SpanData | None:
        """The span of a model call's frame, or of any other finished row (tool, run, agent)."""
        try:
            if isinstance(item, ModelCallComplete):
                record = item.trace
                provider = self.provider_of(record.chat_id)
                self._agent_chats.saw_model_call(record, provider)
                return span_of(record, cache=item.cache, provider=provider, options=self._options)
            if isinstance(item, TraceRecord):
                record = item
                if record.kind != "agent":
                    return span_of(record, options=self._options)
                chat, provider = self._agent_chats.of_agent(record)
                return span_of(record, provider=provider, conversation=chat, options=self._options)
        except Exception:
            log.exception("otel export: a span could not be built; it is dropped")
            self.refused += 1
        return None

    def _send(self, spans: list[SpanData]) -> None:
        if not spans:
            return
        if not self._accepting:  # a batch before this one failed: not worth a timeout
            self.skipped += len(spans)
            return
        try:
            accepted = self.sender.send(spans)
        except Exception:
            log.exception("otel export: sending failed")
            accepted = 0
        self.spans_sent += accepted
        self.refused += len(spans) - accepted
        if accepted == 0:
            self._accepting, self._failed_at = False, time.monotonic()
        if accepted < len(spans) and not self.failing:
            self.failing = True
            self.notify(
                f"boonb: traces cannot be exported to {self.target.describe()}: it did not "
                f"accept them (down, unreachable or refusing). Agents are not affected; "
                f"{self.spans_dropped} spans dropped so far, counted in %boonb."
            )
        elif accepted == len(spans) and self.failing:
            self.failing = False
            self.notify(
                f"boonb: exporting traces to {self.target.describe()} again; "
                f"{self.spans_dropped} spans were dropped while it failed."
            )
