"""Write the example notebooks in notebooks/ (run again after editing the cells here)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent / "notebooks"

PROJECT_SETUP = '''\
# A small project for the agent to look at, in a temporary folder.
import tempfile, pathlib
project = pathlib.Path(tempfile.mkdtemp(prefix="boonb-quickstart-"))
(project / "sales.csv").write_text(
    "region,quarter,units,revenue\\nNorth,Q1,120,24000\\nSouth,Q1,80,15200\\n"
    "North,Q2,150,30500\\nEast,Q2,60,11000\\n")
(project / "notes.md").write_text("# Notes\\nReview the North region on Friday.\\n")
%boonb config project={project}
'''

SIM_RULES = '''\
# No API key is set, so boonb uses its built-in simulator. Script it so the
# "model" reads the project with tools, like a real one would.
from boonb.runtime import get_runtime
from boonb.sim import Rule
sim = get_runtime().simulator()
sim.add_rule(Rule("sales", tool_calls=[
    {"name": "list_files", "arguments": {}},
    {"name": "read_file", "arguments": {"path": "sales.csv"}},
]))
sim.add_rule(Rule("region,quarter", role="tool", reply=(
    "sales.csv has 4 rows. North leads with 270 units (54,500 revenue) over Q1 and Q2.")))
'''


def quickstart() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# boonb quickstart\n\nRun an agent with tools, look at every call "
                          "it made in the trace viewer, and query the traces with SQL. "
                          "Everything here runs offline on boonb's simulator."),
        new_code_cell("%load_ext boonb"),
        new_code_cell(PROJECT_SETUP),
        new_code_cell(SIM_RULES),
        new_markdown_cell("## Run an agent\n\nThe cell body is the prompt. The answer streams "
                          "in, then a one-line summary: turns, tool calls, tokens, cache hits, "
                          "cost and time."),
        new_code_cell("%%agent --max-turns 5\nSummarise the sales data in this project."),
        new_code_cell("result = _\nprint(result.content)\nassert result.stats.tool_calls == 2"),
        new_markdown_cell("## The trace viewer\n\nEvery model call and tool call, grouped by "
                          "turn, with latency bars and the prompt-cache bar of each turn. "
                          "Click a row (or use the arrow keys and Enter) to see its input "
                          "and output."),
        new_code_cell("%traces"),
        new_markdown_cell("## SQL over the traces\n\n`boonb.traces()` is a DuckDB relation "
                          "(of the last chat by default)."),
        new_code_cell("import boonb\nrel = boonb.traces()\n"
                      "rel.aggregate('kind, tool_name, count(*) AS calls, "
                      "round(avg(latency_ms), 1) AS avg_ms, sum(tokens_used) AS tokens', "
                      "'kind, tool_name').order('kind, tool_name')"),
        new_code_cell("calls = boonb.traces().filter(\"kind = 'tool'\")"
                      ".project('tool_name').fetchall()\n"
                      "assert sorted(c[0] for c in calls) == ['list_files', 'read_file']"),
    ])


CACHE_RULES = '''\
from boonb.runtime import get_runtime
from boonb.sim import Rule
sim = get_runtime().simulator()  # the simulator caches prompt prefixes as DeepSeek does
# Scripted answers: the tools are offered (their schemas are part of every prompt) but
# these questions need none, so the simulator answers each in one call.
for question, answer in [
    ("prompt cache", "A provider keeps the prefixes of prompts it has seen; a repeated "
                     "prefix costs less and comes back faster."),
    ("order", "Only an identical prefix hits: a change early in the prompt invalidates "
              "everything after it."),
    ("breaks", "Changing the system prompt, the tool schemas or earlier messages."),
    ("one more", "Ask away."),
]:
    sim.add_rule(Rule(question, reply=f"[simulator] {answer}"))
'''


def cache_telemetry() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell(
            "# Prompt-cache telemetry\n\nProviders such as DeepSeek and OpenAI cache the "
            "prefix of a prompt they have seen: a repeated prefix is cheaper and faster. "
            "boonb records, for every model call, how many prompt tokens were cache hits, "
            "split by segment (system prompt, tool schemas, history, attachments), and "
            "which segment broke the prefix when a call missed. This runs on the "
            "simulator, which caches prefixes the way DeepSeek does."),
        new_code_cell("%load_ext boonb"),
        new_code_cell(CACHE_RULES),
        new_markdown_cell("## A conversation that keeps its prefix\n\nEach follow-up "
                          "resends the whole history; everything sent before is a hit."),
        new_code_cell("import boonb\nagent = boonb.new_agent(tools=['list_files', 'read_file'])"
                      "\nfor prompt in ['What is a prompt cache?', 'Why does order matter?',"
                      " 'And what breaks it?']:\n"
                      "    print(boonb.start(agent, prompt).summary())"),
        new_markdown_cell("## Now change the tools\n\nThe tool schemas sit before the "
                          "history in the prompt, so changing them invalidates everything "
                          "after: the next call misses."),
        new_code_cell("agent.tools.pop('read_file')\n"
                      "print(boonb.start(agent, 'One more question.').summary())"),
        new_code_cell("breaks = boonb.cache_breaks(agent.chat_id)\nprint(breaks)\n"
                      "assert breaks == ['cache broken by: tools changed at turn 4']"),
        new_markdown_cell("## Per turn and per segment, in SQL"),
        new_code_cell(
            "store = get_runtime().store\nstore.writer.flush()\n"
            "with store.db.connection() as con:\n"
            "    rows = con.execute('''\n"
            "        SELECT turn_number, segment, tokens, hit_tokens, miss_tokens\n"
            "        FROM cache_stats WHERE chat_id = ? ORDER BY turn_number,\n"
            "          list_position(['system','tools','history','attachments'], segment)\n"
            "    ''', [agent.chat_id]).fetchall()\n"
            "for row in rows:\n    print(row)"),
        new_code_cell(
            "hit_rates = {t.turn_number: t.hit_rate for t in store.traces.turn_cache("
            "agent.chat_id)}\nprint(hit_rates)\n"
            "assert hit_rates[1] == 0 and hit_rates[3] > 0.5 and hit_rates[4] < hit_rates[3]"),
        new_markdown_cell("## The same, drawn\n\nEach turn's bar shows cached (green) "
                          "against uncached (gray) prompt tokens; hover it for the "
                          "segments and what broke the cache. The footer is the running "
                          "hit rate."),
        new_code_cell("%traces {agent.chat_id}"),
    ])


WF_SETUP = '''\
# A tiny project with a few problems for the reviewers and scanners to find.
import tempfile, pathlib
project = pathlib.Path(tempfile.mkdtemp(prefix="boonb-workflows-"))
(project / "app.py").write_text(
    'SECRET_KEY = "hunter2"\\n'
    "\\n"
    "def login(db, user, password):\\n"
    '    query = "SELECT * FROM users WHERE name = \\'" + user + "\\'"\\n'
    "    return db.execute(query).fetchone()\\n")
%boonb config project={project}
from boonb.runtime import get_runtime
from boonb.sim import Rule
sim = get_runtime().simulator()
'''

RESEARCH = '''\
sim.clear_rules()
sim.add_rule(Rule(r"Sources:", reply=(
    "docs/duckdb.md claims columnar storage and vectorised execution suit analytical "
    "queries over traces; evidence: strong. It leaves open concurrent writers.")))
sim.add_rule(Rule(r"evidence: strong", reply=(
    "Answer: yes. DuckDB fits trace analytics: columnar, embedded, SQL. Key finding: "
    "vectorised scans over millions of rows are fast (docs/duckdb.md). Open question: "
    "one writer process at a time. Confidence: moderate, from one strong source.")))
sim.add_rule(Rule(r"Angle:", reply=(
    "1. DuckDB documentation | docs/duckdb.md | describes columnar storage and vectorised "
    "execution")))
'''

REVIEW = '''\
sim.clear_rules()
sim.add_rule(Rule(r"^Review", tool_calls=[{"name": "read_file", "arguments": {"path": "app.py"}}]))
sim.add_rule(Rule(r"def login", role="tool", reply=(
    "high | app.py:4 | SQL query built by string concatenation\\n"
    "medium | app.py:1 | secret key hard-coded in source")))
'''

PLAN = '''\
sim.clear_rules()
sim.add_rule(Rule(r"Verifier's review", reply=(
    "Use parameters in login: replace the concatenated query with a placeholder; "
    "accept: a test logs in a user named O'Brien.\\n\\n"
    "Move SECRET_KEY to the environment: accept: app.py has no literal secret.")))
sim.add_rule(Rule(r"Plan:\\n", reply=(
    "VERDICT: approve\\n- Step 1 needs a test with a quote in the user name.")))
sim.add_rule(Rule(r"^Goal:", reply=(
    "1. Change login() in app.py to use a query parameter; test with a quoted name.\\n"
    "2. Read SECRET_KEY from the environment; test that app.py holds no secret.\\n"
    "Risks: callers relying on the old query text.")))
'''

HUNT = '''\
sim.clear_rules()
sim.add_rule(Rule(r"^Scan", tool_calls=[{"name": "read_file", "arguments": {"path": "app.py"}}]))
sim.add_rule(Rule(r"execute", role="tool", reply=(
    "9 | 8 | app.py:4 | SQL injection in login | user name: ' OR '1'='1\\n"
    "6 | 5 | app.py:1 | hard-coded secret | read the source to forge sessions")))
sim.add_rule(Rule(r"\\| app.py", reply=(
    "9 | 8 | app.py:4 | SQL injection in login | user name: ' OR '1'='1\\n"
    "6 | 5 | app.py:1 | hard-coded secret | read the source to forge sessions")))
'''


def workflows() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell(
            "# The built-in workflows\n\nEach runs its agents in boonb's sandbox on the "
            "simulator, which is scripted below so the answers make sense. With a real "
            "model, drop the `sim.add_rule` cells. `%workflow list` shows every workflow "
            "found in the project, in `~/.boocode/workflows` and in the built-in catalog."),
        new_code_cell("%load_ext boonb"),
        new_code_cell(WF_SETUP),
        new_code_cell("%workflow list"),
        new_markdown_cell("## deep-research\n\nSearchers look from several angles at once, "
                          "an analyst weighs each angle's sources, a synthesiser writes the "
                          "report."),
        new_code_cell(RESEARCH),
        new_code_cell("research = %workflow run deep-research --args "
                      "'{\"question\": \"Is DuckDB a good store for agent traces?\"}'\n"
                      "print(research['report'])\nassert research['report'].startswith('Answer')"),
        new_markdown_cell("## multi-review\n\nCode-health, security and standards "
                          "reviewers read the code in parallel; their findings are merged "
                          "and de-duplicated (note the reviewers list)."),
        new_code_cell(REVIEW),
        new_code_cell("review = %workflow run multi-review --args '{\"path\": \"app.py\"}'\n"
                      "for f in review['findings']:\n    print(f)\n"
                      "assert len(review['findings']) == 2\n"
                      "assert review['findings'][0]['severity'] == 'high'\n"
                      "assert len(review['findings'][0]['reviewers']) == 3"),
        new_markdown_cell("## plan-verify\n\nA planner writes the plan, an independent "
                          "verifier checks it, and the corrections become work items."),
        new_code_cell(PLAN),
        new_code_cell("plan = %workflow run plan-verify --args "
                      "'{\"goal\": \"Fix the login query and the secret key\"}'\n"
                      "print(plan['work_items'])\nassert plan['approved']"),
        new_markdown_cell("## bounty-hunt\n\nOne scanner per focus (injection, auth, "
                          "crypto, business logic), then the findings ranked by impact "
                          "times likelihood."),
        new_code_cell(HUNT),
        new_code_cell("hunt = %workflow run bounty-hunt --args '{\"target\": \"app.py\"}'\n"
                      "for f in hunt['findings']:\n    print(f['score'], f['location'], "
                      "f['issue'])\nassert hunt['findings'][0]['score'] == 72"),
        new_markdown_cell("## Run it again: nothing is dispatched\n\nEvery agent's result "
                          "is cached by a hash of its prompt, input, model and tools."),
        new_code_cell("again = %workflow run bounty-hunt --args '{\"target\": \"app.py\"}'\n"
                      "assert again == hunt"),
    ])


def main() -> None:
    ROOT.mkdir(exist_ok=True)
    notebooks = {"quickstart": quickstart(), "cache-telemetry": cache_telemetry(),
                 "workflows": workflows()}
    for name, notebook in notebooks.items():
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}
        nbformat.write(notebook, ROOT / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
    main()
