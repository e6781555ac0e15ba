"""Store benchmarks: record cost, writer throughput, page latency, flush latency under contention.

Run: .venv/bin/python -m benchmarks.bench_store
Figures are printed, never asserted. Targets (issue 2): recording at most 5 µs per trace and
at least 5x cheaper than the OpenTelemetry SDK's BatchSpanProcessor; the writer at least
100,000 rows/s; one page of 50 in a chat of 1,000,000 traces at most 10 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boonb.agent.recorder import Recorder
from boonb.bus import Bus
from boonb.frames import ToolTraceComplete, TraceRecord
from boonb.ids import new_id
from boonb.store import STORED_FRAME_TYPES, Store
from boonb.store.trace_table import trace_table

N_RECORD = 50_000
CHUNK = 5_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _trace(chat: uuid.UUID, session: uuid.UUID, i: int) -> ToolTraceComplete:
    """A finished tool call as the recorder makes it (its id is a time-ordered UUIDv7)."""
    return ToolTraceComplete(
        trace=TraceRecord(
            id=new_id(),
            session_id=session,
            chat_id=chat,
            turn_number=i // 50,
            kind="tool",
            tool_name="read_file",
            input={"path": "data.csv"},
            output={"rows": 10},
            started_at=T0 + timedelta(microseconds=i),
            finished_at=T0 + timedelta(microseconds=i + 1000),
            latency_ms=1.0,
        )
    )


def bench_record_cost(tmp: Path) -> None:
    """Caller-thread cost of recording one tool call, against OpenTelemetry.

    boonb: what an agent does per tool call, through its real Recorder: open the trace
    (mint its id, read both clocks), offer the start frame (not built here: no live view
    listens), then build the finished record and its frame and publish them to the bus,
    whose store subscriber enqueues the record for the writer.
    OpenTelemetry: a span with 7 attributes, ended into a BatchSpanProcessor whose
    exporter does nothing.

    What is timed is the CPU time of the calling thread (``time.thread_time``), in chunks
    of 5,000 calls. Between chunks, untimed, each side's batch is written out (boonb's
    writer flushes to the DuckDB file, OTel's processor exports), as their background
    threads do in a running program: the queues stay short, and neither a thread writing
    nor DuckDB's own threads are charged to the caller.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class NoopExporter(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            NoopExporter(),
            max_queue_size=CHUNK * 4,
            max_export_batch_size=CHUNK * 4,
            schedule_delay_millis=600_000,
        )
    )
    tracer = provider.get_tracer("bench")

    store = Store(tmp / "record.duckdb", flush_interval=600)
    store.writer.wake_at = CHUNK * 10
    bus = Bus()
    bus.subscribe(store.writer.enqueue_frame, types=STORED_FRAME_TYPES)
    chat, session = uuid.uuid4(), uuid.uuid4()
    recorder = Recorder(bus, store.writer.enqueue, session_id=session, chat_id=chat)
    arguments, output = {"path": "data.csv"}, {"rows": 10}

    def boonb_chunk(turn: int) -> float:
        start = time.thread_time()
        for _ in range(CHUNK):
            trace = recorder.open(turn)
            recorder.tool_started(trace, name="read_file", call_id="c1", arguments=arguments)
            recorder.tool_finished(
                trace,
                name="read_file",
                call_id="c1",
                arguments=arguments,
                output=output,
                outcome="success",
            )
        elapsed = time.thread_time() - start
        store.writer.flush()
        return elapsed

    def otel_chunk(turn: int) -> float:
        start = time.thread_time()
        for _ in range(CHUNK):
            span = tracer.start_span("read_file")
            span.set_attribute("chat_id", str(chat))
            span.set_attribute("session_id", str(session))
            span.set_attribute("turn_number", turn)
            span.set_attribute("kind", "tool")
            span.set_attribute("input", '{"path": "data.csv"}')
            span.set_attribute("output", '{"rows": 10}')
            span.set_attribute("latency_ms", 1.0)
            span.end()
        elapsed = time.thread_time() - start
        provider.force_flush()
        return elapsed

    runs: dict[str, list[float]] = {"boonb": [], "otel": []}
    for _ in range(5):
        for name, chunk in (("boonb", boonb_chunk), ("otel", otel_chunk)):
            total = sum(chunk(turn) for turn in range(N_RECORD // CHUNK))
            runs[name].append(total / N_RECORD * 1e6)
    provider.shutdown()
    store.close()
    b, o = min(runs["boonb"]), min(runs["otel"])
    print(f"record one tool call, caller thread (best of 5 x {N_RECORD:,}):")
    print(f"  boonb Recorder: open, finish, record + frame published (no live view): {b:6.2f} µs")
    print(f"  OpenTelemetry SDK span + 7 attributes, batch processor:              {o:6.2f} µs")
    print(f"  OTel / boonb: {o / b:.1f}x")


def bench_writer_throughput(tmp: Path) -> None:
    """200,000 finished tool calls enqueued and flushed into a new file, three times.

    Baseline, in each round: DuckDB alone inserting and committing the same rows, already
    converted to one Arrow table, into a new file: the ceiling on this machine right now.
    """
    chat, session = uuid.uuid4(), uuid.uuid4()
    frames = [_trace(chat, session, i) for i in range(200_000)]
    table = trace_table([frame.trace for frame in frames])
    rates, ceilings = [], []
    for run in range(3):
        store = Store(tmp / f"throughput-{run}.duckdb", flush_interval=10)  # flushed by hand
        store.writer.flush()
        start = time.perf_counter()
        for frame in frames:
            store.writer.enqueue(frame)
        store.writer.flush()
        rates.append(len(frames) / (time.perf_counter() - start))
        store.close()

        baseline = Store(tmp / f"ceiling-{run}.duckdb")
        with baseline.db.connection() as con:
            start = time.perf_counter()
            con.begin()
            con.register("batch", table)
            con.execute("INSERT INTO tool_traces SELECT * FROM batch")
            con.commit()
            ceilings.append(len(frames) / (time.perf_counter() - start))
        baseline.close()
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(f"writer throughput into a file: best {max(rates):,.0f} rows/s (runs: {runs})")
    print(
        f"  DuckDB alone, the same rows as one Arrow table: best {max(ceilings):,.0f} rows/s; "
        f"the writer reaches {max(rates) / max(ceilings):.0%} of it"
    )


def bench_page(tmp: Path) -> None:
    store = Store(tmp / "page.duckdb")
    chat = uuid.uuid4()
    with store.db.connection() as con:
        # Bulk-load 1,000,000 traces of one chat (plus another chat) straight in SQL.
        con.execute(
            """
            INSERT INTO tool_traces (id, session_id, chat_id, turn_number, kind, tool_name,
                input, output, started_at, latency_ms, outcome)
            SELECT uuidv7(), ?, CASE WHEN i % 10 = 0 THEN uuid() ELSE ? END, i // 500, 'tool',
                'read_file', '{"path": "a"}', '"ok"',
                TIMESTAMPTZ '2026-01-01' + to_microseconds(i), 1.0, 'success'
            FROM range(1100000) t(i)
            """,
            [uuid.uuid4(), chat],
        )
        count = con.execute("SELECT count(*) FROM tool_traces WHERE chat_id = ?", [chat]).fetchone()
    print(f"page of 50 in a chat of {count[0]:,} traces:")  # type: ignore[index]
    for label, turn in (("first page", None), ("one turn", 1500)):
        timings = []
        cursor = None
        for _ in range(50):
            start = time.perf_counter()
            page = store.traces.page(chat, cursor=cursor, limit=50, turn_number=turn)
            timings.append((time.perf_counter() - start) * 1000)
            cursor = page.next_cursor
        print(
            f"  {label:10}  p50 {statistics.median(timings):6.2f} ms   "
            f"p95 {sorted(timings)[int(len(timings) * 0.95)]:6.2f} ms"
        )
    # Deep in the chat: the cursor of a page far along.
    deep = None
    for _ in range(3):
        page = store.traces.page(chat, cursor=deep, limit=200)
        deep = page.next_cursor
    start = time.perf_counter()
    store.traces.page(chat, cursor=deep)
    print(f"  later page  {(time.perf_counter() - start) * 1000:6.2f} ms")
    store.close()


CONTENDER = """
import sys, time, uuid
sys.path.insert(0, {root!r})
from benchmarks.bench_store import _trace
from boonb.store import Store
store = Store({path!r}, flush_interval=0.05, lock_timeout=60)
chat, session = uuid.uuid4(), uuid.uuid4()
end = time.monotonic() + {seconds}
i = 0
while time.monotonic() < end:
    for _ in range(100):
        store.writer.enqueue(_trace(chat, session, i)); i += 1
    store.writer.flush()
store.close()
"""


def bench_flush_under_contention(tmp: Path) -> None:
    path = tmp / "contended.duckdb"
    store = Store(path, flush_interval=10)
    root = str(Path(__file__).resolve().parent.parent)
    other = subprocess.Popen(
        [sys.executable, "-c", CONTENDER.format(root=root, path=str(path), seconds=8)]
    )
    time.sleep(1.0)
    chat, session = uuid.uuid4(), uuid.uuid4()
    timings = []
    for batch in range(60):
        for i in range(100):
            store.writer.enqueue(_trace(chat, session, batch * 100 + i))
        start = time.perf_counter()
        store.writer.flush()
        timings.append((time.perf_counter() - start) * 1000)
    other.wait()
    store.close()
    timings.sort()
    print("flush of 100 rows while another process writes the same file:")
    p95 = timings[int(len(timings) * 0.95)]
    p50 = statistics.median(timings)
    print(f"  p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   max {timings[-1]:6.1f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_record_cost(Path(tmp))
        bench_writer_throughput(Path(tmp))
        bench_page(Path(tmp))
        bench_flush_under_contention(Path(tmp))


if __name__ == "__main__":
    main()
