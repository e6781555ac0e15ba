"""The chat-completions endpoint: from request bytes to a planned HTTP response.

This module decides *what* to answer (errors, faults, latency, body or stream events); the
HTTP layer in :mod:`boonb.sim.server` only writes the plan out. Latency and timeout faults
are waited out here, before the first byte, on an event that ``SimServer.stop`` sets so a
stopping server never hangs on a sleeping request.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, FaultQueue
from .images import invalid_image, text_only_refusal
from .messages import image_count
from .replies import plan_reply
from .responses import (
    Usage,
    UsageStyle,
    completion_object,
    error_body,
    sim_model_name,
    stream_chunks,
)
from .rules import RuleBook
from .tokens import PrefixCache, prompt_tokens

MALFORMED_EVENT = '{"id": "chatcmpl-sim-malformed", "choices": [{"delta": {"content": '


@dataclass
class SimState:
    """Everything a chat request reads or updates; shared by all handler threads."""

    rules: RuleBook
    faults: FaultQueue
    cache: PrefixCache
    latency: float = 0.0
    vision: bool = True
    usage_style: UsageStyle = "deepseek"
    stopping: threading.Event = field(default_factory=threading.Event)
    _requests: list[dict[str, Any]] = field(default_factory=list)
    _requests_lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: dict[str, Any]) -> None:
        with self._requests_lock:
            self._requests.append(copy.deepcopy(body))

    def requests(self) -> list[dict[str, Any]]:
        with self._requests_lock:
            return list(self._requests)


@dataclass(frozen=True)
class JsonResponse:
    """A JSON body with Content-Length; ``cut_after`` bytes then drop, if set."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    cut_after: int | None = None


@dataclass(frozen=True)
class StreamResponse:
    """SSE ``data:`` payloads in order; ``cut`` means drop the connection after the last."""

    events: Sequence[str]
    cut: bool = False


Response = JsonResponse | StreamResponse


def json_response(
    status: int, payload: Any, *, headers: Mapping[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(status, json.dumps(payload).encode(), headers or {})


def _bad_request(message: str, *, param: str | None = None) -> JsonResponse:
    return json_response(400, error_body(message, param=param))


def _fault_response(fault: Fault) -> JsonResponse | None:
    """Faults that replace the answer entirely; ``None`` for those that alter it."""
    if fault.kind == "rate_limit":
        message = f"Rate limit reached (simulated); retry after {fault.retry_after:g}s."
        headers = {
            "Retry-After": f"{fault.retry_after:g}",
            "retry-after-ms": str(round(fault.retry_after * 1000)),
        }
        body = error_body(message, error_type="rate_limit_error", code="rate_limit_exceeded")
        return json_response(429, body, headers=headers)
    if fault.kind == "server_error":
        body = error_body(
            f"The simulated server had an error (HTTP {fault.status}).", error_type="server_error"
        )
        return json_response(fault.status, body)
    return None


def _validate(body: Any, raw: bytes, *, vision: bool) -> JsonResponse | None:
    if not isinstance(body, dict):
        return _bad_request("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad_request(
            "'messages' is required and must be a non-empty list.", param="messages"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return _bad_request(
                f"messages[{index}] must be an object with a 'role'.", param=f"messages[{index}]"
            )
        if not vision and image_count(message):
            return json_response(
                400, error_body(text_only_refusal(raw, index), code="invalid_request_error")
            )
    if vision:
        problem = invalid_image(messages)
        if problem is not None:
            return _bad_request(problem, param="messages")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return _bad_request("'tools' must be a list.", param="tools")
    return None


def _completion_id(raw: bytes) -> str:
    return "chatcmpl-sim-" + hashlib.sha256(raw).hexdigest()[:24]


def handle_chat(raw: bytes, state: SimState) -> Response:
    """Answer one ``POST /chat/completions``: each call consumes one injected fault."""
    fault = state.faults.pop()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _bad_request(f"The request body is not valid JSON: {exc}")
    if isinstance(body, dict):
        state.record(body)
    if fault is not None:
        replaced = _fault_response(fault)
        if replaced is not None:
            return replaced
        if fault.kind == "timeout":
            state.stopping.wait(fault.seconds)
    invalid = _validate(body, raw, vision=state.vision)
    if invalid is not None:
        return invalid

    requested_model = body.get("model")
    model_name = requested_model if isinstance(requested_model, str) else "sim-chat"
    messages = body["messages"]
    # tool_choice "none" forbids tool calls, so the default agent gets no tools to plan with.
    offered = body.get("tools") if body.get("tool_choice") != "none" else None
    reply = plan_reply(messages, model=model_name, rules=state.rules, tools=offered)
    tokens = prompt_tokens(messages, body.get("tools"))
    usage = Usage(
        prompt_tokens=len(tokens),
        cache_hit_tokens=state.cache.lookup_and_remember(tokens),
        completion_tokens=reply.completion_tokens,
        reasoning_tokens=reply.reasoning_tokens,
    )
    latency = reply.latency if reply.latency is not None else state.latency
    if latency > 0:
        state.stopping.wait(latency)

    completion_id = _completion_id(raw)
    model = sim_model_name(model_name)
    if not body.get("stream"):
        payload = completion_object(
            completion_id=completion_id,
            model=model,
            reply=reply,
            usage=usage,
            style=state.usage_style,
        )
        response = json_response(200, payload)
        if fault is not None and fault.kind == "broken_stream":
            return JsonResponse(200, response.body, cut_after=len(response.body) // 2)
        if fault is not None and fault.kind == "malformed_stream":
            return JsonResponse(200, response.body[: len(response.body) // 2])
        return response

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks = stream_chunks(
        completion_id=completion_id,
        model=model,
        reply=reply,
        usage=usage,
        style=state.usage_style,
        include_usage=include_usage,
    )
    events = [json.dumps(chunk) for chunk in chunks]
    if fault is not None and fault.kind == "broken_stream":
        return StreamResponse(events[: fault.after_chunks], cut=True)
    if fault is not None and fault.kind == "malformed_stream":
        events.insert(1, MALFORMED_EVENT)
    return StreamResponse([*events, "[DONE]"])
