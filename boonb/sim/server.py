"""The HTTP layer and the public :class:`SimServer`.

A ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive runs in a daemon thread. JSON
responses carry ``Content-Length``; streams use chunked transfer encoding so the connection
can be reused afterwards (httpx and the ``openai`` SDK pool connections).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from .endpoint import JsonResponse, SimState, StreamResponse, handle_chat, json_response
from .faults import Fault, FaultQueue
from .responses import UsageStyle, error_body, models_list
from .rules import Rule, RuleBook
from .tokens import PrefixCache

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
MODELS_PATHS = frozenset({"/v1/models", "/models"})
SIMULATOR_HEADER = "x-boonb-simulator"
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: bursts of hundreds of concurrent streams

    def __init__(self, address: tuple[str, int], state: SimState) -> None:
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_open_connections(self) -> None:
        """Close idle keep-alive connections so their handler threads end on stop."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    def wake(self) -> None:
        """Open and close a connection so a sleeping ``serve_forever`` loop looks up."""
        host, port = self.server_address[:2]
        try:
            with socket.create_connection((str(host), port), timeout=0.5):
                pass
        except OSError:
            pass  # already closed: nothing to wake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (timeouts, cancelled streams) is normal here, not an error.
        import sys

        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "boonb-simulator/0.1"
    # Headers, body and each SSE event are separate small writes; with Nagle's algorithm
    # and the client's delayed ACK every keep-alive request would stall about 40 ms.
    disable_nagle_algorithm = True
    server: _SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the simulator runs inside tests and notebooks."""

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True  # unsupported: the body stays unread
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _common_headers(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header(SIMULATOR_HEADER, "1")
        for name, value in headers:
            self.send_header(name, value)

    def _write_json(self, response: JsonResponse) -> None:
        self._common_headers(response.status, response.headers.items())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.cut_after is None:
            self.wfile.write(response.body)
            return
        self.wfile.write(response.body[: response.cut_after])
        self._drop_connection()

    def _write_stream(self, response: StreamResponse) -> None:
        self._common_headers(200, [])
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in response.events:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if response.cut:
            self._drop_connection()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _drop_connection(self) -> None:
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client is already gone

    def _respond(self, response: JsonResponse | StreamResponse) -> None:
        try:
            if isinstance(response, StreamResponse):
                self._write_stream(response)
            else:
                self._write_json(response)
        except _DISCONNECTS:
            self.close_connection = True

    def do_GET(self) -> None:
        path = self._path()
        if path in MODELS_PATHS:
            self._respond(json_response(200, models_list()))
        elif path in {"/", "/v1", "/health"}:
            self._respond(json_response(200, {"simulator": "boonb", "status": "ok"}))
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if self._path() in CHAT_PATHS:
            self._respond(handle_chat(raw, self.server.state))
        else:
            self._not_found()

    def _not_found(self) -> None:
        message = f"No route {self.command} {self._path()} on the boonb simulator."
        self._respond(json_response(404, error_body(message, code="not_found")))


class SimServer:
    """A deterministic, scriptable OpenAI-compatible chat server on loopback.

    ``latency`` (seconds) is waited before the first byte of every answer, streamed or
    not; a rule's own ``latency`` replaces it for the requests that rule answers. With
    ``usage_style="deepseek"`` usage carries ``prompt_cache_hit_tokens`` /
    ``prompt_cache_miss_tokens``; with ``"openai"`` it carries
    ``prompt_tokens_details.cached_tokens``. Prefixes are cached in ``cache_block``-token
    blocks. ``latency`` and ``vision`` can be changed while the server runs.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        vision: bool = True,
        usage_style: UsageStyle = "deepseek",
        rules: Iterable[Rule] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        cache_block: int = 64,
    ) -> None:
        if usage_style not in ("deepseek", "openai"):
            raise ValueError(f"usage_style must be 'deepseek' or 'openai', got {usage_style!r}")
        self.host = host
        self.port = port
        self._state = SimState(
            rules=RuleBook(rules),
            faults=FaultQueue(),
            cache=PrefixCache(cache_block),
            latency=latency,
            vision=vision,
            usage_style=usage_style,
        )
        self._httpd: _SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, serve in a daemon thread, and return the base URL (``.../v1``)."""
        if self._httpd is not None:
            return self.base_url
        self._state.stopping.clear()
        self._httpd = _SimHTTPServer((self.host, self.port), self._state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"boonb-sim:{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, wake sleeping requests and close open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._state.stopping.set()
        # shutdown() waits for serve_forever to notice, which takes up to a poll interval;
        # a throwaway connection wakes its select() at once, keeping test teardown fast.
        stopper = threading.Thread(target=httpd.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive():
            httpd.wake()
            stopper.join(0.01)
        httpd.drop_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``; the port is the real one when ``port=0`` was asked."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not running: call start() or use `with SimServer()`")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- scripting -------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        """Append a rule; earlier rules take precedence."""
        self._state.rules.add(rule)

    def clear_rules(self) -> None:
        self._state.rules.clear()

    @property
    def rules(self) -> list[Rule]:
        """Rules that can still fire, in matching order."""
        return self._state.rules.rules

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` chat requests meet ``fault`` (queued after earlier faults)."""
        self._state.faults.push(fault, times)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copies of the JSON bodies of chat requests received so far, oldest first."""
        return self._state.requests()

    def reset_cache(self) -> None:
        """Forget cached prefixes, so the next request reports no cache hits."""
        self._state.cache.reset()

    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        self._state.latency = seconds

    @property
    def vision(self) -> bool:
        return self._state.vision

    @vision.setter
    def vision(self, enabled: bool) -> None:
        self._state.vision = enabled

    @property
    def usage_style(self) -> UsageStyle:
        return self._state.usage_style

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<SimServer {where}>"
