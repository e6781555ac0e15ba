"""A real OTLP/HTTP traces receiver for tests: the exporter under test sends to it over HTTP.

It accepts ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest`` (as the
OpenTelemetry SDK's OTLP/HTTP exporter sends it), decodes it with ``opentelemetry-proto``
and keeps every span, every raw body and every request's headers. Tests wait on it with
:meth:`OtlpReceiver.wait_for` (a condition, not a sleep).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a root span."""
    name: str
    kind: int
    """The protobuf enum: 1 internal, 3 client."""
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    """0 unset, 1 ok, 2 error."""
    status_message: str
    scope: str
    schema_url: str
    """The instrumentation scope's schema URL."""


def decode_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(decode_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: decode_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` serves on a free loopback port until the block ends."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.requests = 0
        """Export requests that arrived (counted before they are answered)."""
        self.request_headers: list[dict[str, str]] = []
        """Each arrived request's headers, names in lower case (refused requests too)."""
        self.hold: threading.Event | None = None
        """When set to an event, each request is answered only once it is set (a slow endpoint)."""
        self.status = 200
        """The answer to each request; another code refuses its spans (400: not retried)."""
        self.refuse: Callable[[list[ReceivedSpan]], bool] = lambda spans: False
        """Requests whose spans this holds for are refused (400), as a backend refuses some."""
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver._arrived(dict(self.headers.items()))
                if receiver.hold is not None:
                    receiver.hold.wait()
                if receiver.status != 200:
                    self.send_error(receiver.status)
                    return
                if not receiver._receive(body, dict(self.headers.items())):
                    self.send_error(400)
                    return
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 30) -> bool:
        """Wait until ``done(spans)`` holds; False if it still does not after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: done(self.spans), timeout)

    def wait_for_requests(self, count: int, timeout: float = 30) -> bool:
        """Wait until ``count`` requests arrived (answered or not)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.requests >= count, timeout)

    def _arrived(self, headers: dict[str, str]) -> None:
        with self._changed:
            self.requests += 1
            self.request_headers.append({k.lower(): v for k, v in headers.items()})
            self._changed.notify_all()

    def _receive(self, body: bytes, headers: dict[str, str]) -> bool:
        """Keep a request's spans; False if :attr:`refuse` refuses them."""
        raw = body
        encoding = {k.lower(): v for k, v in headers.items()}.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = [
            ReceivedSpan(
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                name=span.name,
                kind=span.kind,
                start_ns=span.start_time_unix_nano,
                end_ns=span.end_time_unix_nano,
                attributes={kv.key: decode_value(kv.value) for kv in span.attributes},
                status_code=span.status.code,
                status_message=span.status.message,
                scope=scoped.scope.name,
                schema_url=scoped.schema_url,
            )
            for resource in request.resource_spans
            for scoped in resource.scope_spans
            for span in scoped.spans
        ]
        if self.refuse(spans):
            return False
        with self._changed:
            self.bodies.append(raw)
            self.headers.append(headers)
            self.spans.extend(spans)
            self._changed.notify_all()
        return True
