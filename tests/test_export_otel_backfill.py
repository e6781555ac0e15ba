"""Backfill: ``export_otel`` sends what the database holds, as the live export sent it.

A kernel exports live to one real OTLP receiver; a restarted kernel (a new runtime on the
same database) backfills to another; the two must have received the same spans: ids,
parents, names, kinds, attributes (content included) and timestamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from boonb import config
from boonb.api import export_otel
from boonb.export import ExportNotConfigured, InvalidExportScope, sdk
from boonb.runtime import Runtime
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.test_export_otel import closed_port, exporting_runtime, run_chat

pytestmark = pytest.mark.slow


def comparable(spans: list[ReceivedSpan]) -> dict[str, tuple[Any, ...]]:
    return {
        s.span_id: (
            s.trace_id, s.parent_span_id, s.name, s.kind, s.start_ns, s.end_ns,
            sorted(s.attributes.items()), s.status_code, s.status_message,
        )
        for s in spans
    }  # fmt: skip


@pytest.fixture
def recorded() -> Iterator[tuple[OtlpReceiver, uuid.UUID, uuid.UUID]]:
    """A chat and a workflow run exported live (content on), the first kernel then gone."""
    with OtlpReceiver() as live:
        runtime = exporting_runtime(live.base_url, otel_capture_content="true")
        try:
            chat_id = run_chat(runtime)
            run_id = runtime.workflows.run("deep-research", {"question": "Are ducks fast?"})
            assert runtime.workflows.wait(run_id, timeout=120).state == "completed"
            runtime.store.writer.flush()
            assert runtime.export is not None and runtime.export.flush(timeout=30)
        finally:
            runtime.shutdown()
        yield live, chat_id, run_id


def restarted(endpoint: str) -> Runtime:
    config.reset()
    config.update(otel_endpoint=endpoint, otel_capture_content="true", otel_timeout_s=0.5)
    return Runtime()


def test_backfill_of_a_stored_chat_and_run_sends_the_spans_live_export_sent(
    recorded: tuple[OtlpReceiver, uuid.UUID, uuid.UUID],
) -> None:
    live, chat_id, run_id = recorded
    with OtlpReceiver() as later:
        runtime = restarted(later.base_url)
        try:
            chat_summary = export_otel(str(chat_id), runtime=runtime)
            run_summary = export_otel(run_id, runtime=runtime)
            sent = comparable(later.spans)
            # A workflow agent's own chat: its calls (not the run's other rows).
            with runtime.store.db.connection() as con:
                (agent_chat,) = con.execute(
                    "SELECT chat_id FROM tool_traces WHERE root_id = ? AND kind = 'model' "
                    "ORDER BY started_at LIMIT 1",
                    [run_id],
                ).fetchone()  # type: ignore[misc]
            later.spans.clear()
            agent_summary = export_otel(agent_chat, runtime=runtime)
        finally:
            runtime.shutdown()
        of_agent = comparable(later.spans)
    expected = comparable(live.spans)
    assert len(expected) == len(live.spans)  # no span twice
    assert sent == expected
    live_chat = [s for s in live.spans if s.trace_id == chat_id.hex]
    assert (chat_summary.traces, chat_summary.spans_sent, chat_summary.spans_dropped) == (
        1, len(live_chat), 0,
    )  # fmt: skip
    assert run_summary.spans_sent == len(live.spans) - len(live_chat)
    assert any("gen_ai.input.messages" in s.attributes for s in live.spans)
    agent_spans = [s for s in live.spans if s.attributes.get("boonb.chat.id") == str(agent_chat)]
    assert of_agent == comparable(agent_spans)
    assert agent_summary.spans_sent == len(agent_spans) > 0
    assert {s.attributes.get("gen_ai.provider.name") for s in later.spans} >= {"sim"}


def test_backfill_of_all_sends_every_tree_and_says_how_many(
    recorded: tuple[OtlpReceiver, uuid.UUID, uuid.UUID],
) -> None:
    live, chat_id, run_id = recorded
    with OtlpReceiver() as later:
        runtime = restarted(later.base_url)
        try:
            summary = export_otel("all", runtime=runtime)
        finally:
            runtime.shutdown()
        assert comparable(later.spans) == comparable(live.spans)
    assert (summary.traces, summary.spans_sent, summary.spans_dropped) == (2, len(live.spans), 0)
    assert f"{len(live.spans)} spans of 2 traces sent to" in str(summary)


def test_backfill_to_a_dead_endpoint_reports_every_span_dropped(
    recorded: tuple[OtlpReceiver, uuid.UUID, uuid.UUID],
) -> None:
    live, _, _ = recorded
    runtime = restarted(f"http://127.0.0.1:{closed_port()}")
    try:
        summary = export_otel("all", runtime=runtime)
    finally:
        runtime.shutdown()
    assert (summary.spans_sent, summary.spans_dropped) == (0, len(live.spans))
    assert "dropped" in str(summary)


def test_export_otel_refuses_bad_ids_and_an_unconfigured_endpoint() -> None:
    runtime = Runtime()
    try:
        with pytest.raises(ExportNotConfigured, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
            export_otel("all", runtime=runtime)
        config.update(otel_endpoint="http://127.0.0.1:4318", otel_sdk_disabled="true")
        with pytest.raises(ExportNotConfigured, match="OTEL_SDK_DISABLED=true switches"):
            export_otel("all", runtime=runtime)
    finally:
        runtime.shutdown()
    runtime = restarted(f"http://127.0.0.1:{closed_port()}")
    try:
        unknown = uuid.uuid4()
        with pytest.raises(InvalidExportScope, match=f"no chat or workflow run {unknown}"):
            export_otel(unknown, runtime=runtime)
        with pytest.raises(InvalidExportScope, match="a chat id, a workflow run id or 'all'"):
            export_otel("last-tuesday", runtime=runtime)
        with pytest.raises(InvalidExportScope, match="got 42"):
            export_otel(42, runtime=runtime)  # type: ignore[arg-type]
    finally:
        runtime.shutdown()


def test_a_tree_refused_in_part_does_not_stop_the_backfill_of_the_next_ones(
    recorded: tuple[OtlpReceiver, uuid.UUID, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    live, _, _ = recorded
    monkeypatch.setattr(sdk, "BATCH_SIZE", 1)  # a request per span: a tree is many
    with OtlpReceiver() as later:
        later.refuse = lambda spans: any(s.name == "execute_tool read_file" for s in spans)
        runtime = restarted(later.base_url)
        try:
            summary = export_otel("all", runtime=runtime)
        finally:
            runtime.shutdown()
    refused = [s for s in live.spans if s.name == "execute_tool read_file"]
    assert len(refused) >= 2  # in the chat (the first tree) and in the run
    assert comparable(later.spans) == comparable([s for s in live.spans if s not in refused])
    assert (summary.spans_sent, summary.spans_dropped) == (
        len(live.spans) - len(refused), len(refused),
    )  # fmt: skip
