"""Live OpenTelemetry export: boonb's runs and chats reach a real OTLP/HTTP receiver.

The receiver (tests/otlp_receiver.py) runs on loopback in the test; the SDK's OTLP/HTTP
exporter sends to it over real HTTP, and the receiver decodes the protobuf it got. The
agents run on the simulator, recording into a real DuckDB file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from boonb import config
from boonb.errors import AgentError, ConfigError
from boonb.export import (
    ExportNotInstalled,
    InvalidHeaders,
    UnsupportedProtocol,
    export_target,
    open_sender,
)
from boonb.export.ids import span_id_of
from boonb.export.sdk import batches
from boonb.export.spans import span_of
from boonb.frames import ToolTraceComplete
from boonb.magics.status import export_text, settings_text
from boonb.runtime import Runtime
from boonb.sim import Fault, Rule
from tests.conftest import make_trace
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-boonb-FAKE-KEY-8f3a9c1d2e7b"
HEADER_SECRET = "hdr-SECRET-5d1e9a7c3b"
NOTES = "alpha line of the notes\nbeta line\n"
INTERNAL, CLIENT = 1, 3  # the protobuf's span kinds
STATUS_UNSET, STATUS_ERROR = 0, 2


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def exporting_runtime(endpoint: str, **settings: Any) -> Runtime:
    """A runtime on the simulator exporting to ``endpoint``; its agents can read notes.txt."""
    config.update(otel_endpoint=endpoint, **settings)
    project = Path(config.get_settings().project)
    project.mkdir(parents=True, exist_ok=True)
    (project / "notes.txt").write_text(NOTES)
    runtime = Runtime()
    sim = runtime.simulator()
    sim.latency = 0
    read_notes = [{"name": "read_file", "arguments": {"path": "notes.txt"}}]
    sim.add_rule(Rule("read the notes", tool_calls=read_notes))
    # deep-research's searchers get their angle last; its analysts get sources after it.
    sim.add_rule(Rule(r"Angle: [^\n]*\Z", tool_calls=read_notes))
    return runtime


@pytest.fixture
def runtime(receiver: OtlpReceiver) -> Iterator[Runtime]:
    rt = exporting_runtime(receiver.base_url)
    yield rt
    rt.shutdown()


def run_chat(runtime: Runtime, prompt: str = "please read the notes") -> uuid.UUID:
    agent = runtime.agent_factory.new_agent()
    runtime.engine.run(agent.run(prompt))
    return agent.chat_id


def stored_rows(runtime: Runtime, root: uuid.UUID) -> list[tuple[Any, ...]]:
    runtime.store.writer.flush()
    with runtime.store.db.connection() as con:
        rows: list[tuple[Any, ...]] = con.execute(
            "SELECT id, parent_id, kind, tool_name, input_tokens, output_tokens, cache_tokens, "
            "reasoning_tokens, call_id, outcome, chat_id FROM tool_traces WHERE root_id = ?",
            [root],
        ).fetchall()
    return rows


def spans_of_trace(receiver: OtlpReceiver, root: uuid.UUID) -> list[ReceivedSpan]:
    return [s for s in receiver.spans if s.trace_id == root.hex]


def hex_id(row_id: uuid.UUID | None) -> str:
    return "" if row_id is None else f"{span_id_of(row_id):016x}"


def test_a_workflow_run_arrives_as_one_trace_with_its_tree_names_and_tokens(
    runtime: Runtime, receiver: OtlpReceiver
) -> None:
    run_id = runtime.workflows.run("deep-research", {"question": "Is DuckDB good for traces?"})
    assert runtime.workflows.wait(run_id, timeout=120).state == "completed"
    rows = stored_rows(runtime, run_id)
    assert runtime.export is not None and runtime.export.flush(timeout=30)
    spans = spans_of_trace(receiver, run_id)
    by_span = {s.span_id: s for s in spans}
    assert len(spans) == len(rows) == len(by_span)  # one trace: every row, once
    assert {s.trace_id for s in receiver.spans} == {run_id.hex}
    expected_names = {
        "workflow": "invoke_workflow {}",
        "phase": "phase {}",
        "agent": "invoke_agent {}",
        "model": "chat {}",
        "tool": "execute_tool {}",
    }
    for row_id, parent, kind, name, tokens_in, tokens_out, cached, reasoning, call_id, *_ in rows:
        span = by_span[hex_id(row_id)]
        assert span.parent_span_id == hex_id(parent)  # parented exactly as the stored tree
        assert span.name == expected_names[kind].format(name)
        assert span.kind == (CLIENT if kind == "model" else INTERNAL)
        assert span.status_code == STATUS_UNSET
        assert span.attributes["boonb.workflow_run.id"] == str(run_id)
        assert span.attributes["session.id"] == str(run_id)  # the run groups its spans
        if kind == "workflow":
            assert span.attributes["gen_ai.workflow.name"] == "deep-research"
        if kind == "model":
            assert span.attributes["gen_ai.response.model"] == "sim-chat"
            assert span.attributes["gen_ai.operation.name"] == "chat"
            assert span.attributes["gen_ai.provider.name"] == "sim"
            assert span.attributes["gen_ai.usage.input_tokens"] == tokens_in > 0
            assert span.attributes["gen_ai.usage.output_tokens"] == tokens_out > 0
            assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == cached
            assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == reasoning
            assert "boonb.cache.system.hit_tokens" in span.attributes
        if kind == "tool":
            assert span.attributes["gen_ai.tool.name"] == name
            assert span.attributes["gen_ai.tool.call.id"] == call_id
    names = sorted(s.name for s in spans if s.attributes["boonb.kind"] != "model")
    assert names.count("execute_tool read_file") >= 3  # each searcher read the notes
    assert "invoke_workflow deep-research" in names and "phase search" in names
    assert {"invoke_agent analyst #1", "invoke_agent analyst #2", "invoke_agent analyst #3"} <= set(
        names
    )  # the parallel analyses, named apart
    for agent in (s for s in spans if s.name.startswith("invoke_agent ")):
        calls = [s for s in spans if s.parent_span_id == agent.span_id]  # its model calls
        assert agent.name == f"invoke_agent {agent.attributes['gen_ai.agent.name']}"
        assert agent.attributes["gen_ai.agent.id"] == agent.attributes["boonb.agent.id"]
        assert agent.attributes["gen_ai.provider.name"] == "sim"
        assert {agent.attributes["gen_ai.conversation.id"]} == {
            c.attributes["gen_ai.conversation.id"] for c in calls
        }
    searchers = [s for s in spans if s.name.startswith("invoke_agent search-")]
    (phase,) = [s for s in spans if s.name == "phase search"]
    assert len(searchers) == 3 and all(s.parent_span_id == phase.span_id for s in searchers)
    hits = sum(s.attributes.get("gen_ai.usage.cache_read.input_tokens", 0) for s in spans)
    assert hits > 0  # the prefix cache's hits reach the backend

    again = runtime.workflows.run("deep-research", {"question": "Is DuckDB good for traces?"})
    assert runtime.workflows.wait(again, timeout=120).state == "completed"
    runtime.store.writer.flush()
    assert runtime.export.flush(timeout=30)
    cached_run = spans_of_trace(receiver, again)
    agents = [s for s in cached_run if s.name.startswith("invoke_agent ")]
    assert len(agents) == 7 and all(a.attributes["boonb.cached"] is True for a in agents)
    assert all(a.attributes["boonb.outcome"] == "cached" for a in agents)
    assert not any("gen_ai.conversation.id" in a.attributes for a in agents)  # no chat ran
    assert not {s.parent_span_id for s in cached_run} & {a.span_id for a in agents}


def test_a_chat_exports_its_model_and_tool_calls_as_one_conversation(
    runtime: Runtime, receiver: OtlpReceiver
) -> None:
    chat_id = run_chat(runtime)
    rows = stored_rows(runtime, chat_id)
    assert runtime.export is not None and runtime.export.flush(timeout=30)
    spans = spans_of_trace(receiver, chat_id)
    assert len(spans) == len(rows) == 3  # model call, read_file, model call
    models = sorted((s for s in spans if s.name == "chat sim-chat"), key=lambda s: s.start_ns)
    (tool,) = [s for s in spans if s.name == "execute_tool read_file"]
    assert [m.parent_span_id for m in models] == ["", ""]  # the chat started the tree
    assert tool.parent_span_id == models[0].span_id  # the call that asked for it
    assert models[0].start_ns < tool.start_ns <= tool.end_ns < models[1].start_ns
    for span in spans:
        assert span.attributes["gen_ai.conversation.id"] == str(chat_id)
        assert span.attributes["session.id"] == str(chat_id)  # Langfuse's, Phoenix's session
        assert span.schema_url == "https://opentelemetry.io/schemas/1.44.0"
    assert models[0].attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    (tool_row,) = [r for r in rows if r[2] == "tool"]
    assert tool.attributes["gen_ai.tool.call.id"] == tool_row[8]
    assert "boonb.cost_usd" in models[0].attributes
    assert {s.scope for s in spans} == {"boonb"}


def test_message_content_stays_out_of_spans_by_default(
    runtime: Runtime, receiver: OtlpReceiver
) -> None:
    run_chat(runtime, "please read the notes about the zebra")
    assert runtime.export is not None and runtime.export.flush(timeout=30)
    assert receiver.spans
    content_keys = {
        "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.definitions",
    }  # fmt: skip
    for span in receiver.spans:
        assert not content_keys & set(span.attributes)
    sent = b"".join(receiver.bodies)
    assert b"zebra" not in sent and b"alpha line" not in sent


def test_message_content_and_tool_arguments_are_exported_when_the_user_opts_in(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    config.reset()
    runtime = exporting_runtime(receiver.base_url)
    try:
        run_chat(runtime, "please read the notes about the zebra")
        assert runtime.export is not None and runtime.export.flush(timeout=30)
    finally:
        runtime.shutdown()
    models = sorted(
        (s for s in receiver.spans if s.attributes["boonb.kind"] == "model"),
        key=lambda s: s.start_ns,
    )
    (tool,) = [s for s in receiver.spans if s.attributes["boonb.kind"] == "tool"]
    assert "zebra" in models[0].attributes["gen_ai.input.messages"]
    assert "gen_ai.system_instructions" in models[0].attributes
    assert '"tool_call"' in models[0].attributes["gen_ai.output.messages"]
    assert "notes.txt" in tool.attributes["gen_ai.tool.call.arguments"]
    assert "alpha line" in tool.attributes["gen_ai.tool.call.result"]
    assert "tool_call_response" in models[1].attributes["gen_ai.input.messages"]
    definitions = json.loads(models[0].attributes["gen_ai.tool.definitions"])
    read_file = next(d for d in definitions if d["name"] == "read_file")
    assert read_file["type"] == "function" and "parameters" in read_file  # flat, not nested


def test_an_api_key_never_leaves_in_any_exported_byte(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={HEADER_SECRET}")
    config.reset()
    # Content on: the most that can leave. The key is the provider's (configured), and
    # the model passes it to a tool, which returns it.
    runtime = exporting_runtime(
        receiver.base_url, provider="sim", deepseek_api_key=FAKE_KEY, otel_capture_content="true"
    )
    try:

        def remember(text: str) -> str:
            """Remember a text."""
            return f"remembered {text}"

        from boonb.agent.tools.definition import tool

        runtime.tools.register(tool()(remember))
        runtime.simulator().add_rule(
            Rule("keep the key", tool_calls=[{"name": "remember", "arguments": {"text": FAKE_KEY}}])
        )
        # A user pasting the tracing backend's key into a prompt: scrubbed too.
        chat_id = run_chat(runtime, f"keep the key {FAKE_KEY} safe, and {HEADER_SECRET}")
        assert runtime.export is not None and runtime.export.flush(timeout=30)
        shown = export_text(runtime) + settings_text()
    finally:
        runtime.shutdown()
    assert len(spans_of_trace(receiver, chat_id)) == 3
    tool_span = next(s for s in receiver.spans if s.name == "execute_tool remember")
    assert "[redacted]" in tool_span.attributes["gen_ai.tool.call.arguments"]
    everything = b"".join(receiver.bodies)
    assert FAKE_KEY.encode() not in everything
    assert HEADER_SECRET.encode() not in everything
    assert all(FAKE_KEY not in value for h in receiver.headers for value in h.values())
    # The headers reach the endpoint (they are its credentials), and nowhere else.
    assert all(h.get("x-api-key") == HEADER_SECRET for h in receiver.headers)
    assert "x-api-key" in shown and HEADER_SECRET not in shown and FAKE_KEY not in shown


def test_a_failed_tool_call_gets_an_error_type_and_an_error_status(
    runtime: Runtime, receiver: OtlpReceiver
) -> None:
    def explode(path: str) -> str:
        """Fail, always."""
        raise ValueError("the disk is on fire")

    from boonb.agent.tools.definition import tool

    runtime.tools.register(tool()(explode))
    runtime.simulator().add_rule(
        Rule("blow it up", tool_calls=[{"name": "explode", "arguments": {"path": "x"}}])
    )
    chat_id = run_chat(runtime, "blow it up")
    assert runtime.export is not None and runtime.export.flush(timeout=30)
    spans = spans_of_trace(receiver, chat_id)
    (failed,) = [s for s in spans if s.name == "execute_tool explode"]
    assert failed.status_code == STATUS_ERROR and "the disk is on fire" in failed.status_message
    assert failed.attributes["error.type"] == "_OTHER"
    assert failed.attributes["boonb.outcome"] == "error"
    assert all(s.status_code == STATUS_UNSET for s in spans if s is not failed)
    assert all("error.type" not in s.attributes for s in spans if s is not failed)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connections are refused


def test_a_dead_endpoint_costs_agents_nothing_and_its_drops_are_counted_and_told_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = exporting_runtime(f"http://127.0.0.1:{closed_port()}", otel_timeout_s=0.5)
    try:
        chats = [run_chat(runtime) for _ in range(2)]  # each finishes, with its answer
        rows = sum(len(stored_rows(runtime, c)) for c in chats)
        export = runtime.export
        assert export is not None and export.flush(timeout=30)
        assert (export.spans_sent, export.spans_dropped) == (0, rows)
        assert f"{rows} dropped" in export_text(runtime)
    finally:
        runtime.shutdown()
    told = capsys.readouterr().err
    assert told.count("traces cannot be exported to") == 1
    assert "Agents are not affected" in told


def test_a_slow_endpoint_never_holds_up_publishing_and_the_queue_stays_bounded(
    receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()
    receiver.hold = release  # each request waits until released: a slow endpoint
    runtime = exporting_runtime(receiver.base_url, otel_max_queue=100)
    try:
        export = runtime.export
        assert export is not None
        chat = uuid.uuid4()
        first = ToolTraceComplete(trace=make_trace(chat_id=chat))
        runtime.bus.publish(first)
        assert receiver.wait_for_requests(1)  # the export thread is now stuck in the first send
        for i in range(1_000):  # every publish returns at once, endpoint or not
            runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat, seconds=i)))
        # At most 100 calls wait to be built and 100 built spans wait to be sent.
        assert export.overflowed + export.backlogged >= 1_000 - 200
        release.set()
        assert export.flush(timeout=30)
        assert export.spans_sent + export.spans_dropped == 1_001
        assert 1 < export.spans_sent <= 201 and export.refused == 0
        assert f"{export.spans_dropped} dropped" in export_text(runtime)
    finally:
        release.set()
        runtime.shutdown()
    assert capsys.readouterr().err.count("cannot keep up") == 1


def test_export_is_off_by_default_and_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from boonb.runtime import Runtime\n"
        "import boonb.api, boonb.magics.status\n"
        "rt = Runtime()\n"
        "print(rt.export is None, [m for m in sys.modules if m.startswith('opentelemetry')])\n"
        "rt.shutdown()\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BOONB_"))}
    environment["BOONB_PROJECT"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"


def test_export_switched_on_without_the_extra_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if opentelemetry-exporter-otlp-proto-http were not installed.
    monkeypatch.delitem(sys.modules, "boonb.export.sdk", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    config.update(otel_endpoint="http://127.0.0.1:4318")
    target = export_target(config.get_settings())
    assert target is not None
    with pytest.raises(ExportNotInstalled, match=r"pip install 'boonb\[otel\]'"):
        open_sender(target)
    runtime = Runtime()  # agents still run, without export, and the user is told why
    try:
        assert runtime.export is None
    finally:
        runtime.shutdown()
    assert "traces are not exported" in capsys.readouterr().err


def test_the_standard_variables_switch_export_on_and_say_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert export_target(config.get_settings()) is None  # off by default
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    config.reset()
    target = export_target(config.get_settings())
    assert target is not None and target.endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://cloud.langfuse.com/api/otel")
    config.reset()
    target = export_target(config.get_settings())
    assert target is not None and target.endpoint == "https://cloud.langfuse.com/api/otel"
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Basic%20{HEADER_SECRET}")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    config.reset()
    target = export_target(config.get_settings())
    assert target is not None and target.endpoint == "http://localhost:4318/v1/traces"
    assert target.headers == (("authorization", f"Basic {HEADER_SECRET}"),)
    assert target.capture_content
    assert HEADER_SECRET not in target.describe() and "authorization" in target.describe()
    config.update(otel_headers="off")
    assert export_target(config.get_settings()) is None
    config.update(otel_endpoint="http://127.0.0.1:6006")  # %boonb config otel_endpoint=...
    target = export_target(config.get_settings())
    assert target is not None and target.endpoint == "http://127.0.0.1:6006/v1/traces"
    config.update(otel_endpoint="off")
    assert export_target(config.get_settings()) is None


def test_bad_export_settings_get_messages_that_say_what_to_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="http:// or https:// URL"):
        config.update(otel_endpoint="localhost:4318")
    config.update(otel_headers=f"x-api-key {HEADER_SECRET}")
    with pytest.raises(InvalidHeaders, match="key=value") as raised:
        export_target(config.get_settings())
    assert HEADER_SECRET not in str(raised.value)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe")
    config.reset()
    with pytest.raises(ConfigError, match="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        config.get_settings()


def test_boonb_config_switches_export_on_and_status_says_where_traces_go(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    code = (
        "%load_ext boonb\n"
        "%boonb\n"
        f"%boonb config otel_endpoint={receiver.base_url} otel_headers=x-api-key={HEADER_SECRET}\n"
        "get_ipython().run_cell_magic('agent', '', 'please say hello')\n"
        "%boonb\n"
        "%boonb config otel_endpoint=off otel_headers=off\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BOONB_"))}
    environment["BOONB_PROJECT"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("export ")]
    assert lines[0].startswith("export     off (set OTEL_EXPORTER_OTLP_ENDPOINT")
    assert lines[1].startswith(
        f"export     OpenTelemetry {receiver.base_url}/v1/traces (headers: x-api-key): "
    )
    assert HEADER_SECRET not in done.stdout + done.stderr
    assert receiver.wait_for(lambda spans: any(s.name == "chat sim-chat" for s in spans))


def test_a_failed_model_call_gets_an_error_status_and_its_tokens_stay_zero(
    runtime: Runtime, receiver: OtlpReceiver
) -> None:
    runtime.simulator().inject(Fault.server_error(500), times=50)  # every try and retry
    agent = runtime.agent_factory.new_agent()
    with pytest.raises(AgentError):
        runtime.engine.run(agent.run("hello?"))
    assert runtime.export is not None and runtime.export.flush(timeout=30)
    (failed,) = spans_of_trace(receiver, agent.chat_id)
    assert failed.name == "chat sim-chat" and failed.status_code == STATUS_ERROR
    assert failed.attributes["error.type"] == "_OTHER"
    assert failed.attributes["gen_ai.usage.output_tokens"] == 0
    assert "gen_ai.response.model" not in failed.attributes  # no answer came back


def test_an_export_target_and_the_settings_never_show_a_secret() -> None:
    config.update(
        otel_endpoint="https://pk-user:URL-PASSWORD-1234@collector.example:4318",
        otel_headers=f"Authorization=Basic%20{HEADER_SECRET}",
        openai_api_key=FAKE_KEY,
    )
    target = export_target(config.get_settings())
    assert target is not None
    shown = repr(target) + str(target) + target.describe() + settings_text()
    for secret in (HEADER_SECRET, FAKE_KEY, "URL-PASSWORD-1234"):
        assert secret not in shown
    assert "https://pk-user:***@collector.example:4318" in settings_text()
    assert "https://pk-user:***@collector.example:4318/v1/traces" in repr(target)
    assert {HEADER_SECRET, FAKE_KEY, "URL-PASSWORD-1234"} <= target.secrets  # scrubbed from spans
    assert target.endpoint.startswith("https://pk-user:URL-PASSWORD-1234@")  # still sent


def test_the_traces_headers_variable_wins_is_scrubbed_named_and_settings_are_what_is_sent(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    general, traces = "GENERAL-secret-71b2c9", "TRACES-secret-4e8d1a"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-general={general}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"x-traces={traces}")
    config.reset()
    runtime = exporting_runtime(receiver.base_url, otel_capture_content="true")
    try:
        run_chat(runtime, f"please read the notes; {traces} and {general}")
        export = runtime.export
        assert export is not None and export.flush(timeout=30)
        assert "(headers: x-traces)" in export_text(runtime)
        first = receiver.requests
        # Headers switched off from Python: the export follows, and the SDK adds none of
        # the environment's headers behind the settings' back.
        config.update(otel_headers="off", otel_traces_headers="off")
        assert runtime.export is not None and runtime.export is not export
        run_chat(runtime)
        assert runtime.export.flush(timeout=30)
    finally:
        runtime.shutdown()
    with_headers, without = receiver.request_headers[:first], receiver.request_headers[first:]
    assert with_headers and without
    assert all(h.get("x-traces") == traces and "x-general" not in h for h in with_headers)
    assert not any({"x-traces", "x-general"} & set(h) for h in without)
    sent = b"".join(receiver.bodies)
    assert traces.encode() not in sent and general.encode() not in sent
    assert b"[redacted]" in sent


def test_the_standard_switches_keep_export_off_and_grpc_is_refused_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    for name, value in (("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")):
        monkeypatch.setenv(name, value)
        config.reset()
        assert export_target(config.get_settings()) is None
        runtime = Runtime()
        try:
            assert runtime.export is None
            assert export_text(runtime) == f"off ({name}={value})"
        finally:
            runtime.shutdown()
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")  # otlp among others: on
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    config.reset()
    assert export_target(config.get_settings()) is not None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    config.reset()
    with pytest.raises(UnsupportedProtocol, match=r"grpc.*http/protobuf.*4318"):
        export_target(config.get_settings())
    runtime = Runtime()  # agents run; the user is told why nothing is exported, and %boonb too
    try:
        assert runtime.export is None
        assert export_text(runtime).startswith("off: boonb exports traces over OTLP/HTTP only")
    finally:
        runtime.shutdown()
    assert capsys.readouterr().err.count("traces are not exported") == 1
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    config.reset()
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        config.get_settings()


def test_status_shows_why_export_did_not_start_rather_than_how_to_switch_it_on() -> None:
    config.update(otel_endpoint="http://127.0.0.1:4318", otel_headers=f"x-key {HEADER_SECRET}")
    runtime = Runtime()
    try:
        shown = export_text(runtime)
        assert shown.startswith("off: OTEL_EXPORTER_OTLP_HEADERS") and "key=value" in shown
        assert HEADER_SECRET not in shown
        config.update(otel_headers="off")  # fixed: export starts, the error is gone
        assert runtime.export is not None and runtime.export_error is None
    finally:
        runtime.shutdown()


def test_settings_changed_from_python_start_retarget_and_stop_the_export(
    receiver: OtlpReceiver,
) -> None:
    runtime = Runtime()
    try:
        assert runtime.export is None
        config.update(otel_endpoint=receiver.base_url)
        export = runtime.export
        assert export is not None and export.target.endpoint == f"{receiver.base_url}/v1/traces"
        config.update(model="sim-chat")  # nothing of export changed: the same one goes on
        assert runtime.export is export
        config.update(otel_endpoint="off")
        assert runtime.export is None
    finally:
        runtime.shutdown()


def test_a_failing_endpoint_is_not_tried_per_batch_and_a_probe_resumes_export(
    receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 400  # refuses (and is not retried by the SDK)
    runtime = exporting_runtime(receiver.base_url)
    try:
        export = runtime.export
        assert export is not None
        export.probe_interval = 3_600  # no probe until the test asks for one
        chat = uuid.uuid4()
        runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat)))
        assert export.flush(timeout=30) and export.failing and receiver.requests == 1
        for i in range(1_000):  # counted at the subscriber, never queued nor sent
            runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat, seconds=i)))
        assert export.flush(timeout=30)
        assert receiver.requests == 1 and export.spans_dropped == 1_001
        receiver.status = 200
        export.probe_interval = 0  # the next wake lets calls through again
        assert export.flush(timeout=30)
        runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=chat, seconds=5_000)))
        assert export.flush(timeout=30)
        assert (export.spans_sent, export.spans_dropped, export.failing) == (1, 1_001, False)
    finally:
        runtime.shutdown()
    told = capsys.readouterr().err
    assert told.count("traces cannot be exported") == 1 and "exporting traces to" in told


def test_long_attributes_are_cut_to_the_limit_and_large_exports_go_in_several_requests(
    receiver: OtlpReceiver,
) -> None:
    runtime = exporting_runtime(
        receiver.base_url, otel_capture_content="true", otel_attribute_value_length_limit=700_000
    )
    try:
        export = runtime.export
        assert export is not None
        chat = uuid.uuid4()
        big = "x" * 1_000_000
        for i in range(12):  # 12 MB of tool output, cut to 8.4 MB: over 4 MB a request
            trace = make_trace(chat_id=chat, seconds=i, output=big)
            runtime.bus.publish(ToolTraceComplete(trace=trace))
        assert export.flush(timeout=60)
        assert (export.spans_sent, export.spans_dropped) == (12, 0)
    finally:
        runtime.shutdown()
    results = [s.attributes["gen_ai.tool.call.result"] for s in receiver.spans]
    assert [len(r) for r in results] == [700_000] * 12
    assert receiver.requests == 3  # 5 + 5 + 2 spans, each request under 4 MB of text
    spans = [span_of(make_trace(chat_id=chat, seconds=i)) for i in range(3)]
    large = [replace(s, attributes={**s.attributes, "big": big * 3}) for s in spans]
    assert [len(b) for b in batches(large + spans)] == [1, 1, 4]  # a 3 MB span: alone


def test_stopping_an_export_stuck_on_a_slow_endpoint_blocks_nothing_else_of_the_runtime(
    receiver: OtlpReceiver,
) -> None:
    release = threading.Event()
    receiver.hold = release
    runtime = exporting_runtime(receiver.base_url)
    try:
        export = runtime.export
        assert export is not None
        runtime.bus.publish(ToolTraceComplete(trace=make_trace(chat_id=uuid.uuid4())))
        assert receiver.wait_for_requests(1)  # the sender waits on the endpoint
        stopping = threading.Thread(target=config.update, kwargs={"otel_endpoint": "off"})
        stopping.start()  # closing waits (up to 5 s) for the send under way
        assert runtime.store.db.path is not None  # the runtime's lock is free meanwhile
        assert runtime.provider().name == "sim"
        assert stopping.is_alive()  # the close was still waiting all along
        release.set()
        stopping.join()
        assert runtime.export is None and export.spans_sent == 1  # its send was not cut off
    finally:
        release.set()
        runtime.shutdown()
