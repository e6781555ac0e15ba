"""The public functions behind the magics: run agents, look up traces, register tools."""

from __future__ import annotations

import concurrent.futures
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from boonb.agent.loop import DEFAULT_SYSTEM_PROMPT, Agent, AgentResult
from boonb.agent.recorder import Recorder
from boonb.agent.sessions import (
    RESTART_NOTE,
    SessionInfo,
    SessionSaver,
    list_sessions,
    load_snapshot,
)
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.registry import Tool
from boonb.agent.tools.registry import tool as make_tool
from boonb.frames import SessionRestored
from boonb.runtime import Runtime, get_runtime
from boonb.store import InvalidChatId, InvalidQuery
from boonb.store.traces import parse_uuid


class AgentHandle:
    """A run going on in the background (``--no-wait``): poll, wait for, or cancel it."""

    def __init__(self, agent: Agent, future: concurrent.futures.Future[AgentResult]) -> None:
        self.agent = agent
        self.future = future

    @property
    def chat_id(self) -> uuid.UUID:
        return self.agent.chat_id

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> bool:
        """Cancel the run; its open traces close with outcome ``cancelled``."""
        return self.future.cancel()

    def result(self, timeout: float | None = None) -> AgentResult:
        return self.future.result(timeout)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<AgentHandle chat={self.chat_id} {state}>"


def new_agent(
    *,
    model: str | None = None,
    tools: Sequence[str | Tool] | None = None,
    budget: int | None = None,
    max_turns: int = 10,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    user_ns: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
    workflow_run_id: uuid.UUID | None = None,
    runtime: Runtime | None = None,
) -> Agent:
    """An agent on the configured provider, recording into the project database.

    ``tools`` names registered tools (or passes Tool objects); None means all
    registered tools, an empty list none.
    """
    runtime = runtime or get_runtime()
    store = runtime.store
    choice = runtime.provider()
    selected = (
        list(runtime.tools)
        if tools is None
        else [t if isinstance(t, Tool) else runtime.tools.get(t) for t in tools]
    )
    recorder = Recorder(
        runtime.bus,
        store.writer.enqueue,
        session_id=runtime.session_id,
        chat_id=uuid.uuid4(),
        agent_id=agent_id,
        workflow_run_id=workflow_run_id,
    )
    agent = Agent(
        runtime.client(choice),
        recorder=recorder,
        tools=selected,
        context=ToolContext(project_root=runtime.settings.project, user_ns=user_ns),
        model=model or choice.model,
        system_prompt=system_prompt,
        max_turns=max_turns,
        budget=budget,
        provider_name=choice.name,
    )
    _keep(runtime, agent, SessionSaver(store, runtime.bus.publish))
    return agent


def _keep(runtime: Runtime, agent: Agent, saver: SessionSaver) -> None:
    """Register a chat with the kernel and save its session at every turn boundary."""
    agent.on_boundary = saver
    runtime.chats[agent.chat_id] = agent
    runtime.last_chat_id = agent.chat_id
    runtime.savers[agent.chat_id] = saver


def sessions() -> list[SessionInfo]:
    """Sessions of this project that can be resumed, newest first."""
    return list_sessions(get_runtime().store)


def restore(agent_session_id: uuid.UUID | str | None = None) -> Agent:
    """Rehydrate a saved session in this kernel (default: the newest resumable one).

    The agent gets its history, pending tool calls and settings back, on the provider
    this kernel is configured for, and is told the kernel restarted.
    """
    runtime = get_runtime()
    store = runtime.store
    if agent_session_id is None:
        found = list_sessions(store)
        if not found:
            raise SessionNotFound("there is no saved session to resume in this project")
        session_id = found[0].id
    else:
        session_id = parse_uuid(agent_session_id, SessionNotFound, "session id")
    snap = load_snapshot(store, session_id)
    if snap is None:
        raise SessionNotFound(f"no saved session {session_id}; see %agent sessions")
    for agent in runtime.chats.values():
        saver = runtime.savers.get(agent.chat_id)
        if saver is not None and saver.agent_session_id == session_id:
            return agent  # already live in this kernel
    choice = runtime.provider()
    saved = snap["provider"]
    model = saved["model"] if saved["name"] == choice.name else choice.model
    known = [name for name in snap["tools"] if name in runtime.tools]
    recorder = Recorder(
        runtime.bus,
        store.writer.enqueue,
        session_id=runtime.session_id,
        chat_id=uuid.UUID(snap["chat_id"]),
        agent_id=snap.get("agent_id"),
    )
    agent = Agent(
        runtime.client(choice),
        recorder=recorder,
        tools=runtime.tools.resolve(known),
        context=ToolContext(project_root=runtime.settings.project, user_ns=_user_ns()),
        model=model,
        max_turns=snap["max_turns"],
        budget=snap["budget"],
        provider_name=choice.name,
    )
    agent.restore_history(snap["messages"], turn_number=snap["turn_number"], title=snap["title"])
    agent.state = snap["state"]
    _keep(runtime, agent, SessionSaver(store, runtime.bus.publish, agent_session_id=session_id))
    runtime.bus.publish(
        SessionRestored(
            agent_session_id=session_id, chat_id=agent.chat_id, state=agent.state, snapshot=snap
        )
    )
    return agent


def resume(agent_session_id: uuid.UUID | str | None = None, *, wait: bool = True) -> Any:
    """Restore a session and carry on: replay its pending tool calls, then run to an answer.

    A session that was waiting for input is restored and told about the restart; send
    it the next prompt with ``%%agent --chat ID``.
    """
    agent = restore(agent_session_id)
    runtime = get_runtime()
    coro = carry_on(agent)
    if coro is None:
        return agent
    if wait:
        return runtime.engine.run(coro)
    return AgentHandle(agent, runtime.engine.submit(coro))


def carry_on(agent: Agent) -> Coroutine[Any, Any, AgentResult] | None:
    """What a restored agent does next: the rest of an interrupted run, or nothing.

    Nothing when it awaits input; it is told about the restart either way.
    """
    if agent.state in ("in_progress", "interrupted") or agent.pending_tool_calls():
        return agent.resume(note=RESTART_NOTE)
    agent.note_restart(RESTART_NOTE)
    return None


class SessionNotFound(InvalidQuery):
    """No saved session has that id."""


def _user_ns() -> Mapping[str, Any] | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns if shell is not None else None


def find_chat(chat_id: uuid.UUID | str, *, runtime: Runtime | None = None) -> Agent:
    """An agent of this kernel by its chat id, to send it a follow-up."""
    runtime = runtime or get_runtime()
    chat = parse_uuid(chat_id, InvalidChatId, "chat id")
    try:
        return runtime.chats[chat]
    except KeyError:
        raise InvalidChatId(
            f"no chat {chat} in this kernel; start one with %%agent, or list past "
            "sessions with %agent sessions"
        ) from None


def start(agent: Agent, prompt: str | list[dict[str, Any]], *, wait: bool = True) -> Any:
    """Run ``prompt`` on the engine: wait for the result, or return an :class:`AgentHandle`."""
    runtime = get_runtime()
    if wait:
        return runtime.engine.run(agent.run(prompt))
    return AgentHandle(agent, runtime.engine.submit(agent.run(prompt)))


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Make a function a tool every agent of this kernel can use (``@boonb.tool``).

    Defining a tool of the same name again (re-running a cell) replaces it.
    """

    def register(function: Callable[..., Any]) -> Tool:
        made = make_tool(name=name, description=description)(function)
        get_runtime().tools.register(made, replace=True)
        return made

    return register(fn) if fn is not None else register


def cache_breaks(chat_id: uuid.UUID | str | None = None) -> list[str]:
    """Why a chat's prompt cache missed: "cache broken by: tools changed at turn 7", ..."""
    runtime = get_runtime()
    chosen = chat_id if chat_id is not None else runtime.last_chat_id
    if chosen is None:
        raise InvalidChatId("no chat has run in this kernel yet; pass a chat id")
    runtime.store.writer.flush()
    return [b.message for b in runtime.store.traces.cache_breaks(chosen)]


def traces(chat_id: uuid.UUID | str | None = None) -> duckdb.DuckDBPyRelation:
    """The traces of one chat (default: the last one) as a DuckDB relation for SQL.

    The rows are copied out of the project database, so the file is not held while
    you work with the relation. Pass ``chat_id="all"`` for every trace of the project.
    """
    runtime = get_runtime()
    store = runtime.store
    store.writer.flush()
    where, params = "", []
    if chat_id != "all":
        chosen = chat_id if chat_id is not None else runtime.last_chat_id
        if chosen is None:
            raise InvalidChatId("no chat has run in this kernel yet; pass a chat id or 'all'")
        where, params = "WHERE chat_id = ?", [parse_uuid(chosen, InvalidChatId, "chat id")]
    local = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "traces.parquet"
        with store.db.connection() as con:
            con.execute(
                f"COPY (SELECT * FROM tool_traces {where} ORDER BY turn_number, started_at, id) "
                f"TO '{snapshot}' (FORMAT parquet)",
                params,
            )
        local.execute(f"CREATE TABLE traces AS SELECT * FROM read_parquet('{snapshot}')")
    return local.table("traces")
