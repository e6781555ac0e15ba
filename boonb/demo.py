"""The offline demo: an agent with tools on the simulator, traced into DuckDB.

Run: ``python -m boonb.demo [DIRECTORY]`` (default ``./boonb-demo``). It writes a small
project there, runs a two-prompt conversation whose model calls and tool calls all
land in ``DIRECTORY/.boonb/boonb.duckdb``, and prints what happened and where to look.
"""

from __future__ import annotations

import sys
from pathlib import Path

from boonb import api, config
from boonb.frames import Frame, MessageDelta
from boonb.runtime import get_runtime
from boonb.sim import Rule

SALES_CSV = """region,quarter,units,revenue
North,Q1,120,24000
South,Q1,80,15200
North,Q2,150,30500
East,Q2,60,11000
South,Q2,95,18900
"""

NOTES = "Quarterly review on Friday. Check whether the North region keeps growing.\n"

# What the simulated model does: read the project, then answer from what it read.
DEMO_RULES = [
    Rule(
        r"sales",
        tool_calls=[
            {"name": "list_files", "arguments": {"path": "."}},
            {"name": "read_file", "arguments": {"path": "sales.csv"}},
        ],
        times=1,
    ),
    Rule(
        r"region,quarter",
        role="tool",
        tool_calls=[{"name": "grep", "arguments": {"pattern": "North", "path": "."}}],
        times=1,
    ),
    Rule(
        r"North",
        role="tool",
        reply=(
            "sales.csv holds 5 rows over 3 regions. North sold the most: 270 units for "
            "54,500 in revenue (Q1 120, Q2 150), and notes.txt asks whether North keeps "
            "growing: it does, +25% from Q1 to Q2."
        ),
        times=1,
    ),
    Rule(r"South", reply="South sold 175 units for 34,100: second after North.", times=1),
]


def write_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sales.csv").write_text(SALES_CSV)
    (root / "notes.txt").write_text(NOTES)


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "boonb-demo").resolve()
    write_project(root)
    config.update(project=root, provider="sim", db_path=None)
    runtime = get_runtime()
    sim = runtime.simulator()
    sim.latency = 0.05
    for rule in DEMO_RULES:
        sim.add_rule(rule)

    def stream(frame: Frame) -> None:
        if isinstance(frame, MessageDelta) and frame.channel == "content":
            print(frame.text, end="", flush=True)

    runtime.bus.subscribe(stream, types={"message:delta"})
    agent = api.new_agent(max_turns=6)
    for prompt in ("Summarise the sales data in this project.", "And how did South do?"):
        print(f"\n>>> {prompt}")
        result = api.start(agent, prompt)
        print(f"\n    [{result.summary()}]")

    store = runtime.store
    store.writer.flush()
    print("\nEvery call, from DuckDB (boonb.traces()):")
    rows = (
        api.traces(agent.chat_id)
        .project(
            "turn_number, kind, tool_name, outcome, round(latency_ms, 1), input_tokens, "
            "cache_tokens"
        )
        .fetchall()
    )  # already in (turn, start) order
    print(f"  {'turn':>4}  {'kind':5}  {'name':11}  {'outcome':7}  {'ms':>6}  {'in':>5}  cached")
    for turn, kind, name, outcome, ms, tokens_in, cached in rows:
        print(
            f"  {turn:>4}  {kind:5}  {name:11}  {outcome:7}  {ms:>6}  {tokens_in:>5}  {cached:>6}"
        )
    summary = store.traces.session_summary(runtime.session_id)
    rate = f"{summary.cache_hit_rate:.0%}" if summary.cache_hit_rate is not None else "n/a"
    print(
        f"\nSession: {summary.model_calls} model calls, {summary.tool_calls} tool calls, "
        f"{summary.tokens_used:,} tokens, cache hit rate {rate} "
        f"({summary.cache_tokens:,}/{summary.input_tokens:,} prompt tokens)."
    )
    print(f"\nDatabase: {store.path}")
    print("Look at it with SQL, e.g.:")
    print(
        f"  python -c \"import duckdb; print(duckdb.connect('{store.path}').sql("
        "'SELECT turn_number, segment, tokens, hit_tokens FROM cache_stats'))\""
    )
    print("In a notebook: %load_ext boonb, then %%agent to run agents and boonb.traces() for SQL.")
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
