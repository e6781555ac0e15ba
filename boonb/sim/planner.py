"""The simulator's default agent: search the project, read what matched, answer from it.

When no rule matches and a request offers boonb's file tools, the simulated model behaves
like a minimal, deterministic agent, so an offline ``%%agent`` shows real tool calls and
traces: first it greps for the prompt's quoted term or salient word (or lists the project
when there is none), then reads the matching files (all in one turn, as parallel calls),
then answers by quoting what the tools returned.

The server is stateless, so the plan is re-derived from the conversation on every request.
The planner's calls carry ids starting with :data:`PLAN_ID_PREFIX`; it only continues a
plan it started since the last user message, never tool calls a rule asked for. It stops
after :data:`MAX_TOOL_TURNS` tool turns, at the first failed tool, and whenever it has
nothing left to do, so an agent loop on the simulator always terminates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .messages import message_text

Message = Mapping[str, Any]
PLAN_ID_PREFIX = "call_sim_"
MAX_TOOL_TURNS = 3
MAX_READS = 4

# Tool name -> the argument the planner fills; a tool of that name whose schema lacks the
# argument is someone else's tool, and the planner leaves it alone.
FILE_TOOLS = {"grep": "pattern", "list_files": "path", "read_file": "path"}

_QUOTED = re.compile(
    r'"([^"\n]{1,60})"|“([^”\n]{1,60})”|`([^`\n]{1,60})`|(?<!\w)\'([^\'\n]{1,60})\'(?!\w)'
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_GREP_MATCH = re.compile(r"^(.+?):(\d+):")
# Words that say what to do rather than what to look for.
_STOPWORDS = frozenset(
    """
    a about above after again all also an and any are as at be been before being below
    between both but by can could describe did do does doing done each explain file files
    find folder for from give had has have here how i if in into is it its list look me
    mention mentioned mentions more most my of on or our out over please project read say
    says search should show so some summarise summarize summary tell than that the their
    them then there these they this those through to under up us was we were what when
    where which while who why will with would you your
    """.split()
)


@dataclass(frozen=True)
class PlannedCall:
    """One tool call the planner wants made."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """A finished tool call of this episode: the parsed result, or the error text."""

    name: str
    arguments: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class Episode:
    """The conversation since the last user message, as the planner sees it."""

    prompt: str
    turns: tuple[tuple[Outcome, ...], ...]
    ours: bool
    """Whether every tool call since the prompt was the planner's own."""

    @property
    def outcomes(self) -> list[Outcome]:
        return [outcome for turn in self.turns for outcome in turn]

    @property
    def term(self) -> str | None:
        return search_term(self.prompt)


def search_term(prompt: str) -> str | None:
    """The quoted term of a prompt, else its longest word that is not a stopword."""
    quoted = _QUOTED.search(prompt)
    if quoted is not None:
        term = next(group for group in quoted.groups() if group is not None).strip()
        if term:
            return term
    words = [w for w in _WORD.findall(prompt) if len(w) >= 3 and w.lower() not in _STOPWORDS]
    return max(words, key=len) if words else None  # max keeps the first of equal lengths


def usable_tools(tools: Iterable[Any] | None) -> frozenset[str]:
    """Names of the offered file tools whose schema takes the argument the planner fills."""
    usable = set()
    for entry in tools or ():
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        name = function.get("name")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if name in FILE_TOOLS and isinstance(properties, Mapping):
            if FILE_TOOLS[name] in properties:
                usable.add(str(name))
    return frozenset(usable)


def read_episode(messages: Sequence[Message]) -> Episode | None:
    """What happened since the last user message; ``None`` when there is no user message."""
    start = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None
    )
    if start is None:
        return None
    results = {
        str(m.get("tool_call_id", "")): message_text(m)
        for m in messages[start + 1 :]
        if m.get("role") == "tool"
    }
    turns: list[tuple[Outcome, ...]] = []
    ours = True
    for message in messages[start + 1 :]:
        calls = [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
        if message.get("role") != "assistant" or not calls:
            continue
        ours = ours and all(str(c.get("id", "")).startswith(PLAN_ID_PREFIX) for c in calls)
        turns.append(tuple(_outcome(call, results) for call in calls))
    return Episode(message_text(messages[start]), tuple(turns), ours)


def _outcome(call: Mapping[str, Any], results: Mapping[str, str]) -> Outcome:
    function = call.get("function")
    if not isinstance(function, Mapping):
        function = {}
    name = str(function.get("name", ""))
    raw = function.get("arguments")
    arguments = dict(raw) if isinstance(raw, Mapping) else _json_object(str(raw or "{}")) or {}
    text = results.get(str(call.get("id", "")))
    if text is None:
        return Outcome(name, arguments, None, "no result")
    parsed = _json_object(text)
    # Anything but a JSON object ("Error: ...", a skip or cancel note) is a failed call.
    return Outcome(name, arguments, parsed, None if parsed is not None else text)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def next_calls(messages: Sequence[Message], tools: Iterable[Any] | None) -> list[PlannedCall]:
    """The planner's next tool calls; an empty list means: answer now."""
    usable = usable_tools(tools)
    episode = read_episode(messages)
    if not usable or episode is None or not episode.ours:
        return []
    if len(episode.turns) >= MAX_TOOL_TURNS:
        return []
    if not episode.turns:
        return _first_calls(episode, usable)
    last = episode.turns[-1]
    if any(outcome.error is not None for outcome in last):
        return []  # answer from what it has, error included
    done = {outcome.name for outcome in episode.outcomes}
    if last[0].name == "grep":
        files = _grep_files(last[0])
        if files:
            return _reads(files, usable)
        if "list_files" in usable and "list_files" not in done:
            return [_list_call()]  # nothing mentions it: perhaps a file is named after it
        return []
    if last[0].name == "list_files" and "read_file" not in done:
        return _reads(_listed_files(last[0], episode.term), usable)
    return []


def _first_calls(episode: Episode, usable: frozenset[str]) -> list[PlannedCall]:
    term = episode.term
    if term is not None and "grep" in usable:
        return [PlannedCall("grep", {"pattern": "(?i)" + re.escape(term)})]
    if "list_files" in usable:
        return [_list_call()]
    return []


def _list_call() -> PlannedCall:
    return PlannedCall("list_files", {"path": ".", "recursive": True})


def _reads(files: Sequence[str], usable: frozenset[str]) -> list[PlannedCall]:
    if "read_file" not in usable:
        return []
    return [PlannedCall("read_file", {"path": path}) for path in files[:MAX_READS]]


def split_match(match: str) -> tuple[str, int, str] | None:
    """A grep match ``file:line:text`` as its parts; ``None`` for anything else."""
    found = _GREP_MATCH.match(match)
    if found is None:
        return None
    return found.group(1), int(found.group(2)), match[found.end() :]


def _grep_files(outcome: Outcome) -> list[str]:
    matches = (outcome.result or {}).get("matches") or []
    files: list[str] = []
    for match in matches:
        parsed = split_match(str(match))
        if parsed is not None and parsed[0] not in files:
            files.append(parsed[0])
    return files


def _listed_files(outcome: Outcome, term: str | None) -> list[str]:
    entries = (outcome.result or {}).get("entries") or []
    names = [
        str(entry["name"])
        for entry in entries
        if isinstance(entry, Mapping)
        and isinstance(entry.get("name"), str)
        and not entry["name"].endswith("/")
        and not entry.get("symlink")
    ]
    if term is None:
        return names
    return [name for name in names if term.lower() in name.lower()]
