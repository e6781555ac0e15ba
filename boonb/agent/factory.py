"""Where every agent of a kernel is built, so all of them are wired the same way.

An agent needs a chat client for the configured provider, a recorder that publishes its
frames on the bus and writes its rows to the project database, its tools, a session
saver that persists it at turn boundaries, and a place among the kernel's live chats.
:func:`boonb.api.new_agent`, :func:`boonb.api.restore` and workflow runs all build
agents through an :class:`AgentFactory` (and so will anything else that starts agents),
so none of them can forget a part.

The factory is given the parts it needs, not the runtime, so it sits in the agent layer
and can be built in a test from a bus, a store and a simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from boonb.agent.loop import DEFAULT_SYSTEM_PROMPT, Agent
from boonb.agent.provider import ProviderChoice
from boonb.agent.recorder import Recorder, TraceParent, calling_trace
from boonb.agent.sessions import SessionSaver
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.definition import Tool
from boonb.agent.tools.registry import ToolRegistry
from boonb.bus import Bus
from boonb.config import Settings
from boonb.frames import SessionRestored
from boonb.providers import ChatClient
from boonb.store import Store

# What the kernel does with each agent built: keep it live (to send it a follow-up, to
# show it in a view) and remember its saver. The runtime passes its own.
Register = Callable[[Agent, SessionSaver], None]


class RunSpec(Protocol):
    """What :meth:`AgentFactory.from_spec` reads of an executor's ``AgentRunSpec``.

    Named by shape: ``boonb.executors`` sits above the agent layer (DESIGN section 1),
    so this module may not import the spec itself.
    """

    @property
    def chat_id(self) -> uuid.UUID: ...
    @property
    def system_prompt(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def tools(self) -> Sequence[str] | None: ...
    @property
    def budget(self) -> int | None: ...
    @property
    def max_turns(self) -> int: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def workflow_run_id(self) -> uuid.UUID | None: ...
    @property
    def parent_trace_id(self) -> uuid.UUID | None: ...
    @property
    def parent_root_id(self) -> uuid.UUID | None: ...


class AgentFactory:
    """Builds the agents of one kernel: new ones, and saved chats restored from a snapshot.

    ``store``, ``settings`` and ``provider`` are read at each build, as the user can
    point the kernel at another database, model or provider at run time (``%boonb
    config``). ``provider`` may start the simulator, so it is only called when an
    agent is built.
    """

    def __init__(
        self,
        *,
        bus: Bus,
        store: Callable[[], Store],
        settings: Callable[[], Settings],
        provider: Callable[[], ProviderChoice],
        client: Callable[[ProviderChoice], ChatClient],
        tools: ToolRegistry,
        session_id: uuid.UUID,
        register: Register,
    ) -> None:
        self.bus = bus
        self.store = store
        self.settings = settings
        self.provider = provider
        self.client = client
        self.tools = tools
        self.session_id = session_id
        self.register = register

    def new_agent(
        self,
        *,
        model: str | None = None,
        tools: Sequence[str | Tool] | None = None,
        budget: int | None = None,
        max_turns: int = 10,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        user_ns: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        workflow_run_id: uuid.UUID | None = None,
        parent: TraceParent | None = None,
        chat_id: uuid.UUID | None = None,
    ) -> Agent:
        """A new chat on the configured provider.

        ``tools`` names registered tools (or passes Tool objects); None means every
        registered tool, an empty list none. An unknown name raises ``UnknownToolError``.
        ``parent`` is where the chat hangs in the trace tree; by default, under the tool
        call that is starting it (if a tool is), else it is a tree of its own.
        ``chat_id`` is the new chat's id when the caller allocated it (a step or task
        that must know it before the run); by default a fresh one.
        """
        return self._new(
            model=model,
            tools=tools,
            budget=budget,
            max_turns=max_turns,
            system_prompt=system_prompt,
            user_ns=user_ns,
            agent_id=agent_id,
            workflow_run_id=workflow_run_id,
            parent=parent if parent is not None else calling_trace(),
            chat_id=chat_id or uuid.uuid4(),
        )

    def from_spec(self, spec: RunSpec) -> Agent:
        """The agent an executor runs for ``spec``: its chat id, tools by name, its parent.

        The spec says all of where the chat hangs in the trace tree: with no parent it is
        a tree of its own, whatever tool call the executor happens to run inside.
        """
        parent = (
            TraceParent(spec.parent_trace_id, spec.parent_root_id)
            if spec.parent_trace_id is not None and spec.parent_root_id is not None
            else None
        )
        return self._new(
            model=spec.model,
            tools=spec.tools,
            budget=spec.budget,
            max_turns=spec.max_turns,
            system_prompt=spec.system_prompt,
            user_ns=None,
            agent_id=spec.agent_id,
            workflow_run_id=spec.workflow_run_id,
            parent=parent,
            chat_id=spec.chat_id,
        )

    def _new(
        self,
        *,
        model: str | None,
        tools: Sequence[str | Tool] | None,
        budget: int | None,
        max_turns: int,
        system_prompt: str,
        user_ns: Mapping[str, Any] | None,
        agent_id: str | None,
        workflow_run_id: uuid.UUID | None,
        parent: TraceParent | None,
        chat_id: uuid.UUID,
    ) -> Agent:
        choice = self.provider()
        selected = (
            list(self.tools)
            if tools is None
            else [t if isinstance(t, Tool) else self.tools.get(t) for t in tools]
        )
        agent = self._build(
            choice,
            chat_id=chat_id,
            agent_id=agent_id,
            workflow_run_id=workflow_run_id,
            parent=parent,
            tools=selected,
            user_ns=user_ns,
            model=model or choice.model,
            system_prompt=system_prompt,
            max_turns=max_turns,
            budget=budget,
        )
        self._keep(agent, agent_session_id=None)
        return agent

    def restore(
        self,
        chat_id: uuid.UUID,
        snapshot: dict[str, Any],
        *,
        agent_session_id: uuid.UUID,
        user_ns: Mapping[str, Any] | None = None,
        parent: TraceParent | None = None,
    ) -> Agent:
        """A saved chat rebuilt from its snapshot: history, pending calls and settings back.

        It runs on the provider this kernel is configured for; the saved model is kept
        when that is the provider it ran on. Tools this kernel no longer has are left out.
        ``parent`` is where the chat hung in the trace tree, so its new calls stay there.
        """
        choice = self.provider()
        saved = snapshot["provider"]
        model = saved["model"] if saved["name"] == choice.name else choice.model
        known = [name for name in snapshot["tools"] if name in self.tools]
        agent = self._build(
            choice,
            chat_id=chat_id,
            agent_id=snapshot.get("agent_id"),
            workflow_run_id=None,
            parent=parent,
            tools=self.tools.resolve(known),
            user_ns=user_ns,
            model=model,
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            max_turns=snapshot["max_turns"],
            budget=snapshot["budget"],
        )
        agent.restore_history(
            snapshot["messages"], turn_number=snapshot["turn_number"], title=snapshot["title"]
        )
        agent.state = snapshot["state"]
        self._keep(agent, agent_session_id=agent_session_id)
        self.bus.publish(
            SessionRestored(
                agent_session_id=agent_session_id,
                chat_id=agent.chat_id,
                state=agent.state,
                snapshot=snapshot,
            )
        )
        return agent

    def _build(
        self,
        choice: ProviderChoice,
        *,
        chat_id: uuid.UUID,
        agent_id: str | None,
        workflow_run_id: uuid.UUID | None,
        parent: TraceParent | None,
        tools: Sequence[Tool],
        user_ns: Mapping[str, Any] | None,
        model: str,
        system_prompt: str,
        max_turns: int,
        budget: int | None,
    ) -> Agent:
        settings = self.settings()
        recorder = Recorder(
            self.bus,
            self.store().writer.enqueue,
            session_id=self.session_id,
            chat_id=chat_id,
            agent_id=agent_id,
            workflow_run_id=workflow_run_id,
            parent=parent,
        )
        return Agent(
            self.client(choice),
            recorder=recorder,
            tools=tools,
            context=ToolContext(project_root=settings.project, user_ns=user_ns),
            model=model,
            system_prompt=system_prompt,
            max_turns=max_turns,
            budget=budget,
            provider_name=choice.name,
            max_tool_output=settings.tool_output_max_chars,
        )

    def _keep(self, agent: Agent, *, agent_session_id: uuid.UUID | None) -> None:
        """Save the chat at every turn boundary, and hand it to the kernel."""
        saver = SessionSaver(self.store(), self.bus.publish, agent_session_id=agent_session_id)
        agent.on_boundary = saver
        self.register(agent, saver)
