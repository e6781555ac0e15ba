"""Injected faults and latency of the simulator, seen by a plain httpx client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boonb.sim import Fault, Rule, SimServer

BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hello there"}]}
STREAM_BODY = {**BODY, "stream": True}


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http


def ok(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/chat/completions", json=BODY)
    assert response.status_code == 200
    return response.json()


def test_rate_limit_is_429_with_retry_after_then_recovers(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.inject(Fault.rate_limit(retry_after=2.5), times=2)
    for _ in range(2):
        response = client.post("/chat/completions", json=BODY)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2.5"
        assert response.headers["retry-after-ms"] == "2500"
        assert response.headers["x-boonb-simulator"] == "1"
        error = response.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert error["message"]
    ok(client)


def test_server_error_status_and_body(sim: SimServer, client: httpx.Client) -> None:
    sim.inject(Fault.server_error())
    sim.inject(Fault.server_error(503))
    first = client.post("/chat/completions", json=BODY)
    second = client.post("/chat/completions", json=BODY)
    assert (first.status_code, second.status_code) == (500, 503)  # FIFO order
    assert first.json()["error"]["type"] == "server_error"
    ok(client)


def test_faults_are_counted_in_requests(sim: SimServer, client: httpx.Client) -> None:
    sim.inject(Fault.rate_limit(0))
    client.post("/chat/completions", json=BODY)
    ok(client)
    assert len(sim.requests) == 2


def test_timeout_fault_makes_client_timeout_fire(sim: SimServer, client: httpx.Client) -> None:
    sim.inject(Fault.timeout(seconds=5))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json=BODY, timeout=0.3)
    ok(client)  # consumed: the next request is answered at once


def test_broken_stream_stops_after_n_chunks_without_done(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.inject(Fault.broken_stream(after_chunks=2))
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/chat/completions", json=STREAM_BODY) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line:
                    lines.append(line)
    assert len(lines) == 2
    assert all(json.loads(line.removeprefix("data: ")) for line in lines)
    assert "data: [DONE]" not in lines
    # A fresh connection works afterwards.
    ok(client)


def test_broken_stream_on_non_streaming_request_cuts_the_body(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.inject(Fault.broken_stream())
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=BODY)
    ok(client)


def test_malformed_stream_contains_an_invalid_json_line(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.inject(Fault.malformed_stream())
    with client.stream("POST", "/chat/completions", json=STREAM_BODY) as response:
        payloads = [
            line.removeprefix("data: ")
            for line in response.iter_lines()
            if line.startswith("data:")
        ]
    invalid = []
    for payload in payloads:
        try:
            json.loads(payload)
        except json.JSONDecodeError:
            invalid.append(payload)
    assert len(invalid) == 2 and "[DONE]" in invalid  # the bad line, and the DONE marker
    assert payloads[-1] == "[DONE]"


def test_latency_delays_the_answer_and_rule_latency_overrides(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.latency = 0.2
    started = time.perf_counter()
    ok(client)
    assert time.perf_counter() - started >= 0.2

    sim.add_rule(Rule("hello", reply="quick", latency=0.0))
    started = time.perf_counter()
    assert ok(client)["choices"][0]["message"]["content"] == "quick"
    assert time.perf_counter() - started < 0.2


def test_stop_wakes_a_request_sleeping_in_a_timeout_fault() -> None:
    server = SimServer()
    server.start()
    server.inject(Fault.timeout(seconds=30))
    with httpx.Client(base_url=server.base_url) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/chat/completions", json=BODY, timeout=0.2)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 5


def test_fault_constructors_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Fault.server_error(404)
    with pytest.raises(ValueError):
        Fault.rate_limit(-1)
    with pytest.raises(ValueError):
        SimServer().inject(Fault.server_error(), times=0)
