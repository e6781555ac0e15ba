"""The one module that imports OpenTelemetry: spans as the SDK's, sent by its OTLP exporter.

Imported only once export is switched on (``import boonb`` stays free of OpenTelemetry).
Spans are built as finished ``ReadableSpan``s with boonb's own ids and times, rather than
started and ended through a tracer: the rows already hold when each call began and ended,
and a tracer would mint its own ids.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from boonb.export.errors import INSTALL_HINT, ExportNotInstalled
from boonb.export.spans import SCHEMA_URL, SpanData
from boonb.export.target import ExportTarget

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    from opentelemetry.util.re import parse_env_headers
except ImportError as exc:  # the extra is missing: say how to get it
    raise ExportNotInstalled(
        f"exporting traces to OpenTelemetry needs packages that are not installed ({exc.name}); "
        f"{INSTALL_HINT}, or switch export off: %boonb config otel_endpoint=off"
    ) from None

BATCH_SIZE = 512
"""Most spans per export request, the SDK's BatchSpanProcessor's default."""
BATCH_CHARS = 4_000_000
"""Most attribute text per export request: well under the collector's default 4 MiB
gRPC-side and 20 MiB HTTP-side limits once encoded, so a batch of long contents is
sent as several requests rather than refused whole."""

_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
try:
    _VERSION: str | None = version("boonb")
except PackageNotFoundError:  # run from a source tree without being installed
    _VERSION = None
_SCOPE = InstrumentationScope("boonb", _VERSION, schema_url=SCHEMA_URL)
_UNSET = Status(StatusCode.UNSET)  # the conventions leave a successful call's status unset
_ENV_HEADERS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")

# The SDK logs each failed export (with a traceback-free line) through the logging module;
# with no handler configured, Python prints such lines on stderr, which in a notebook lands
# in whatever cell is running. boonb tells the user once itself (see LiveExport), so the
# lines only go where the user's own logging configuration sends them.
logging.getLogger("opentelemetry.exporter").addHandler(logging.NullHandler())


class OtlpSender:
    """Sends finished spans to one OTLP/HTTP endpoint, in batches; answers what got through."""

    def __init__(self, target: ExportTarget) -> None:
        self.target = target
        self._exporter = OTLPSpanExporter(
            endpoint=target.endpoint, headers=_only(target.headers), timeout=target.timeout_s
        )
        self._resource = Resource.create({"service.name": "boonb"}, schema_url=SCHEMA_URL)

    def send(self, spans: Sequence[SpanData]) -> int:
        """Export ``spans``; returns how many the endpoint accepted (a failed batch counts 0)."""
        accepted = 0
        for chunk in batches(spans):
            batch = [self._readable(s) for s in chunk]
            if self._exporter.export(batch) is SpanExportResult.SUCCESS:
                accepted += len(batch)
        return accepted

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def _readable(self, span: SpanData) -> ReadableSpan:
        context = SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=_SAMPLED)
        parent = (
            SpanContext(span.trace_id, span.parent_span_id, is_remote=False, trace_flags=_SAMPLED)
            if span.parent_span_id is not None
            else None
        )
        status = _UNSET if span.error is None else Status(StatusCode.ERROR, span.error)
        return ReadableSpan(
            name=span.name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=span.attributes,
            kind=_KINDS[span.kind],
            status=status,
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=_SCOPE,
        )


def batches(spans: Sequence[SpanData]) -> Iterator[Sequence[SpanData]]:
    """``spans`` in runs of at most :data:`BATCH_SIZE` spans and :data:`BATCH_CHARS` of text.

    A span longer than that alone is a batch of its own.
    """
    start = chars = 0
    for i, span in enumerate(spans):
        size = span.text_chars()
        if i > start and (i - start >= BATCH_SIZE or chars + size > BATCH_CHARS):
            yield spans[start:i]
            start, chars = i, 0
        chars += size
    if start < len(spans):
        yield spans[start:]


def _only(headers: Sequence[tuple[str, str]]) -> Mapping[str, str]:
    """``headers``, and a None for each header the SDK would add from the environment.

    The SDK merges ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`` under the headers it is given,
    so ``%boonb config otel_headers=off`` would still send them. requests drops a header
    whose value is None, which leaves exactly the settings' headers on the wire.
    """
    chosen = {name.lower(): value for name, value in headers}
    from_env = os.environ.get(_ENV_HEADERS[0]) or os.environ.get(_ENV_HEADERS[1], "")
    dropped = {name.lower(): None for name in parse_env_headers(from_env, liberal=True)}
    return {**dropped, **chosen}  # type: ignore[dict-item]  # None: see above
