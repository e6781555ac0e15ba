"""fetch_url against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from boonb.agent.tools.builtins import fetch_url
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.errors import ToolArgumentError, ToolError

BIG = b"0123456789" * 1000  # 10,000 bytes


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        match self.path:
            case "/hello":
                self._send(200, "text/plain; charset=utf-8", "héllo wörld".encode())
            case "/big":
                self._send(200, "text/plain", BIG)
            case "/redirect":
                self.send_response(302)
                self.send_header("Location", "/hello")
                self.send_header("Content-Length", "0")
                self.end_headers()
            case "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            case "/slow":
                time.sleep(1.0)
                self._send(200, "text/plain", b"late")
            case "/binary":
                self._send(200, "image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
            case _:
                self._send(404, "text/plain", b"not here")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its size cap

    def log_message(self, format: str, *args: Any) -> None:
        pass


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var in PROXY_VARS:  # loopback must not go through a proxy from the environment
                mp.delenv(var, raising=False)
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def fetch(tmp_path: Path, **arguments: Any) -> Any:
    context = ToolContext(project_root=tmp_path, fetch_max_bytes=4000, fetch_timeout=0.5)
    return asyncio.run(fetch_url.invoke(arguments, context))


def test_fetch_returns_status_type_and_decoded_text(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/hello")
    assert result == {
        "url": f"{server}/hello",
        "status": 200,
        "content_type": "text/plain; charset=utf-8",
        "text": "héllo wörld",
        "truncated": False,
    }


def test_fetch_follows_redirects(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/redirect")
    assert result["url"] == f"{server}/hello"
    assert result["text"] == "héllo wörld"


def test_fetch_returns_http_errors_as_status(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/missing")
    assert (result["status"], result["text"]) == (404, "not here")


def test_fetch_truncates_at_the_requested_size(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/big", max_bytes=25)
    assert result["text"] == BIG[:25].decode()
    assert result["truncated"] is True


def test_fetch_never_exceeds_the_context_cap(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/big", max_bytes=1_000_000)
    assert len(result["text"]) == 4000
    assert result["truncated"] is True


def test_body_exactly_at_the_cap_is_not_truncated(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/big", max_bytes=len(BIG))
    # The context cap (4000) is lower, so it still applies.
    assert result["truncated"] is True
    context = ToolContext(project_root=tmp_path, fetch_max_bytes=len(BIG))
    full: Any = asyncio.run(fetch_url.invoke({"url": f"{server}/big"}, context))
    assert full["truncated"] is False
    assert full["text"] == BIG.decode()


def test_binary_content_is_not_shown_as_text(server: str, tmp_path: Path) -> None:
    result = fetch(tmp_path, url=f"{server}/binary")
    assert result["content_type"] == "image/png"
    assert "binary content (image/png) not shown" in result["text"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "example.com"])
def test_non_http_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ToolArgumentError, match="only absolute http:// and https://"):
        fetch(tmp_path, url=url)


def test_timeout_is_a_readable_tool_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"timed out after 0\.5s"):
        fetch(tmp_path, url=f"{server}/slow")


def test_redirect_loop_is_a_tool_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="redirected more than"):
        fetch(tmp_path, url=f"{server}/loop")


def test_connection_refused_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="could not fetch"):
        fetch(tmp_path, url="http://127.0.0.1:9/")


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ToolArgumentError, match="argument 'max_bytes'"):
        fetch(tmp_path, url="http://127.0.0.1/", max_bytes=0)
