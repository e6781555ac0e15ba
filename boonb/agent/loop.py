"""The agent's turn loop: a model call, then the tool phase, until a final answer.

A turn is one model call plus the tool calls it asked for. The loop stops at a final
answer (no tool calls), after ``max_turns`` turns of one run, when the token budget
is spent, or when it is cancelled. The tool phase is the traced boundary: each tool
call gets a ``tool_trace:start`` frame before and a ``tool_traces`` row after, and a
raised error becomes an ``error`` outcome plus a tool message the model can read
(:mod:`boonb.agent.tool_calls`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

from pydantic import JsonValue

from boonb.agent.cache import CacheTracker
from boonb.agent.images import (
    history_images,
    jsonable,
    prompt_content,
    refusal_error,
    refused_by_server,
    vision_check,
    wire_messages,
    without,
)
from boonb.agent.messages import assistant_message, record_message
from boonb.agent.recorder import Recorder
from boonb.agent.result import AgentResult, RunStats, StopReason
from boonb.agent.tool_calls import ToolOutcome, call_tool, calling_agent_var
from boonb.agent.tool_calls import tool_outcome as tool_outcome  # boonb.api imports it here
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.registry import Tool
from boonb.attachments import AttachmentRef, AttachmentStore
from boonb.errors import AgentError, BoonbError
from boonb.frames import MessageDelta, SessionState, TurnComplete, TurnStart, utcnow
from boonb.providers import (
    ChatClient,
    ChatResult,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
)

Phase = Literal["model", "tools", "idle"]


def calling_agent() -> Agent | None:
    """The agent whose tool call is running in this task, or None outside a tool call."""
    return cast("Agent | None", calling_agent_var.get())  # only an Agent's tool calls set it


DEFAULT_SYSTEM_PROMPT = (
    "You are an assistant running inside a Jupyter notebook through boonb. Use the tools "
    "you are given when they help; paths are relative to the project root. Answer concisely."
)


class Agent:
    """One conversation with a model and its tools. ``run`` may be called again to follow up."""

    def __init__(
        self,
        client: ChatClient,
        *,
        recorder: Recorder,
        tools: Sequence[Tool] = (),
        context: ToolContext,
        model: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_turns: int = 10,
        budget: int | None = None,
        provider_name: str = "",
        max_tool_output: int = 200_000,
        attachments: AttachmentStore | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be a positive number of tokens, got {budget}")
        self.client = client
        self.recorder = recorder
        self.tools = {t.name: t for t in tools}
        self.context = context
        self.model = model or client.model
        self.max_turns = max_turns
        self.budget = budget
        self.provider_name = provider_name
        self.max_tool_output = max_tool_output
        """Characters of a tool's output the model reads and the store keeps."""
        self.attachments = attachments or AttachmentStore(context.project_root)
        """Where the bytes of this chat's images are read from when a request is built."""
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self.turn_number = 0
        self.total = RunStats()
        self._cache = CacheTracker()
        self._sent = 1  # messages already shown to the model (for the trace's input delta)
        # Messages in the history not yet recorded, with their turn: see _append(hold=...).
        self._held: list[tuple[dict[str, Any], int]] = []
        # The system prompt and tool schemas the last recorded request carried.
        self._recorded_context: tuple[Any, Any] | None = None
        # The last model call's trace: the parent of the tool calls it asked for.
        self._asked_by: uuid.UUID | None = None
        self._started = False
        self.title = ""
        self.state: SessionState = "awaiting_input"
        self.phase: Phase = "idle"
        self.on_boundary: Callable[[Agent, bool], None] | None = None
        """Called at every turn boundary (``final`` at the end of a run) to save the session."""
        self.notes: Callable[[Agent], str | None] | None = None
        """Asked before each model call for news the model should read (e.g. background
        tasks of its that finished); the news is appended as a user message, so the
        prompt's cached prefix stays as it was."""

    @property
    def chat_id(self) -> uuid.UUID:
        return self.recorder.chat_id

    async def run(
        self, prompt: str | list[dict[str, Any]], *, images: Sequence[AttachmentRef] = ()
    ) -> AgentResult:
        """Send ``prompt`` (text, or content parts) with ``images`` and run turns to an answer.

        Images are stored references (:mod:`boonb.attachments`): the history keeps the
        reference, and each request carries the image as a data URI built as it is sent.
        A model that cannot see raises :class:`~boonb.providers.CapabilityError` here,
        before anything is sent or added to the history, so the next text turn works.
        A data-URI ``image_url`` part in a list prompt is stored and kept as a reference.
        """
        title = prompt if isinstance(prompt, str) and prompt else "(message with attachments)"
        prompt, images_sent = await prompt_content(
            prompt,
            images,
            profile=self.client.profile,
            model=self.model,
            store=self.attachments,
            history=self.messages,
        )
        if not self._started:
            self._started = True
            self.title = title[:200]
            self.recorder.chat_started(provider=self.provider_name, model=self.model, title=title)
        message = {"role": "user", "content": prompt}
        # A message with images is recorded once the server has accepted it: one it
        # refuses leaves no row, frame or trace input behind to be re-sent or shown.
        self._append(message, turn_number=self.turn_number + 1, hold=bool(images_sent))
        try:
            return await self._run_turns()
        except BaseException as exc:
            if not self._holds(message):
                raise
            self._withdraw(message)
            if refused_by_server(exc):
                assert isinstance(exc, AgentError)
                raise refusal_error(exc, images_sent) from exc
            raise

    def _holds(self, message: dict[str, Any]) -> bool:
        return any(held is message for held, _ in self._held)

    def _withdraw(self, message: dict[str, Any]) -> None:
        """Take an unsent or refused message out; what was held behind it is recorded."""
        self._held = [(m, turn) for m, turn in self._held if m is not message]
        self.messages = without(self.messages, message)
        self._sent = min(self._sent, len(self.messages))
        self._record_held()
        self._set_state(self.state, phase="idle", final=True)  # save the history without it

    async def resume(
        self, note: str | None = None, *, finished: Mapping[str, ToolOutcome] | None = None
    ) -> AgentResult:
        """Carry on a restored conversation.

        Replays the tool calls it was waiting on, then runs turns to an answer.
        ``finished`` holds, by call id, the outcome of those calls that had finished before
        the kernel died (see :func:`tool_outcome`): those are not run again.
        ``note`` (e.g. "the kernel restarted") reaches the model as a user message first.
        """
        self._started = True
        try:  # the images the history re-sends: refused here, before any turn starts
            vision_check(
                self.client.profile,
                self.model,
                self.attachments,
                (),
                earlier=history_images(self.messages),
            )
        except BoonbError:
            self._set_state("failed", phase="idle", final=True)
            raise
        return await self._run_turns(self.pending_tool_calls(), finished=finished, note=note)

    def restore_history(
        self, messages: list[dict[str, Any]], *, turn_number: int, title: str
    ) -> None:
        """Take over a saved conversation (the chat row and messages exist already)."""
        self.messages = list(messages)
        self.turn_number = turn_number
        self.title = title
        self._sent = len(self.messages)
        self._started = True
        answers = [i for i, m in enumerate(self.messages) if m["role"] == "assistant"]
        if answers:  # the last model call sent everything before its answer
            self._cache.resume_after(self.messages[: answers[-1]])

    def note_restart(self, note: str) -> None:
        """Tell the model, before its next turn, that the kernel restarted."""
        self._append({"role": "user", "content": note}, turn_number=self.turn_number + 1)

    def pending_tool_calls(self) -> list[ToolCall]:
        """Tool calls of the last assistant message that have no result yet."""
        answered = {m.get("tool_call_id") for m in self.messages if m["role"] == "tool"}
        for message in reversed(self.messages):
            if message["role"] == "assistant":
                return [
                    ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                    for c in message.get("tool_calls") or []
                    if c["id"] not in answered
                ]
        return []

    async def _run_turns(
        self,
        replay: Sequence[ToolCall] = (),
        *,
        finished: Mapping[str, ToolOutcome] | None = None,
        note: str | None = None,
    ) -> AgentResult:
        """Run turns to an answer.

        A resume first replays the tool calls it was waiting on (``replay``, less those
        ``finished``) and adds its ``note``; the replayed calls count in this run's stats,
        and a cancel or an error during them ends the session as it would during a turn.
        """
        began = time.perf_counter()
        stats = RunStats()
        content = ""
        stop: StopReason = "max_turns"
        self._set_state("in_progress", phase="tools" if replay else "model")
        try:
            if replay:
                await self._tool_phase(replay, stats, finished=finished or {})
                self._set_state("in_progress", phase="model")
            if note:
                self._append({"role": "user", "content": note}, turn_number=self.turn_number + 1)
            while stats.turns < self.max_turns:
                if self._budget_spent(stats):
                    stop = "budget"
                    break
                self.turn_number += 1
                stats.turns += 1
                self.recorder.publish(
                    TurnStart(
                        chat_id=self.chat_id, turn_number=self.turn_number, started_at=utcnow()
                    )
                )
                self._add_notes()
                result = await self._model_call(stats)
                content = result.content
                self._append(assistant_message(result), turn_number=self.turn_number)
                if not result.tool_calls:
                    self._turn_complete(result, tool_calls=0)
                    stop = "final"
                    break
                if self._budget_spent(stats):
                    self._skip_tools(result.tool_calls, "not run: the token budget is spent")
                    self._turn_complete(result, tool_calls=0)
                    stop = "budget"
                    break
                # A turn boundary: the model has answered, its tool calls are pending.
                self._set_state("in_progress", phase="tools")
                await self._tool_phase(result.tool_calls, stats)
                self._turn_complete(result, tool_calls=len(result.tool_calls))
                self._set_state("in_progress", phase="model")
        except asyncio.CancelledError:
            self._close_dangling_tool_calls("cancelled by the user")
            self._set_state("cancelled", phase="idle", final=True)
            raise
        except Exception:  # a failed model call, an image gone since the check, or a bug:
            # the session says it failed, and its last state is saved, never left "running"
            self._set_state("failed", phase="idle", final=True)
            raise
        finally:
            self.total.add_run(stats)
        self._set_state("awaiting_input", phase="idle", final=True)
        return AgentResult(self.chat_id, content, stop, stats, time.perf_counter() - began)

    def _add_notes(self) -> None:
        note = self.notes(self) if self.notes is not None else None
        if note:
            self._append({"role": "user", "content": note}, turn_number=self.turn_number)

    def _set_state(self, state: SessionState, *, phase: Phase, final: bool = False) -> None:
        self.state, self.phase = state, phase
        if self.on_boundary is not None:
            self.on_boundary(self, final)

    # The model call.

    async def _model_call(self, stats: RunStats) -> ChatResult:
        tools = [t.openai_schema() for t in self.tools.values()] or None
        messages = list(self.messages)
        tool_names: list[JsonValue] = [name for name in sorted(self.tools)]
        request: dict[str, JsonValue] = {
            "model": self.model,
            "new_messages": jsonable(messages[self._sent :]),
            "message_count": len(messages),
            "tools": tool_names,
        }
        # The system prompt and tool schemas are recorded when they differ from this
        # agent's previous call, so the request as sent can be rebuilt from the store
        # (TraceStore.detail) without repeating them in every trace.
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        context = (system, tools)
        if context != self._recorded_context:
            self._recorded_context = context
            request["system"] = system
            request["tool_schemas"] = jsonable(tools)
        self._sent = len(messages)
        # Data URIs are built here, for this request only (file reads: off the loop).
        wire = await asyncio.to_thread(wire_messages, messages, self.attachments)
        trace = self.recorder.open(self.turn_number)
        self._asked_by = trace.id

        def forward(event: StreamEvent) -> None:
            self._record_held()  # the first event: the server accepted the request
            if isinstance(event, TextDelta | ReasoningDelta):
                self.recorder.publish(
                    MessageDelta(
                        chat_id=self.chat_id,
                        turn_number=self.turn_number,
                        channel="content" if isinstance(event, TextDelta) else "reasoning",
                        text=event.text,
                    )
                )

        try:
            result = await self.client.complete(
                wire, tools=tools, model=self.model, on_event=forward
            )
        except asyncio.CancelledError:
            self._record_held()  # it may have reached the model: the chat keeps it
            self.recorder.model_finished(
                trace, model=self.model, request=request, result=None, outcome="cancelled"
            )
            raise
        except ProviderError as exc:
            if not refused_by_server(exc):
                self._record_held()  # not refused: the message stays in the chat
            elif self._held:  # run() takes them out: the trace alone says what was sent
                request["withdrawn"] = len(self._held)
            self.recorder.model_finished(
                trace,
                model=self.model,
                request=request,
                result=None,
                outcome="error",
                error=str(exc),
            )
            raise AgentError(f"the model call failed: {exc}") from exc
        self._record_held()
        cache = self._cache.segments(
            messages,
            tools,
            input_tokens=result.usage.input_tokens,
            cache_tokens=result.usage.cache_tokens,
        )
        self.recorder.model_finished(
            trace, model=self.model, request=request, result=result, outcome="success", cache=cache
        )
        stats.add_model_call(result)
        return result

    # The tool phase: every call of the turn at once, each traced on its own.

    async def _tool_phase(
        self,
        calls: Sequence[ToolCall],
        stats: RunStats,
        *,
        finished: Mapping[str, ToolOutcome] | None = None,
    ) -> None:
        done = dict(finished or {})
        to_run = [call for call in calls if call.id not in done]
        outcomes = await asyncio.gather(
            *(call_tool(self, call, parent_id=self._asked_by) for call in to_run)
        )
        done.update(zip((call.id for call in to_run), outcomes, strict=True))
        for call in calls:
            text, failed = done[call.id]
            stats.tool_calls += 1
            stats.tool_errors += failed
            self._append(
                {"role": "tool", "tool_call_id": call.id, "content": text},
                turn_number=self.turn_number,
            )

    # Bookkeeping.

    def _append(self, message: dict[str, Any], *, turn_number: int, hold: bool = False) -> None:
        """Add ``message`` to the history and record it (row, frame).

        ``hold`` (or a message held before it) defers the recording until the server has
        accepted the request that carries it (:meth:`_record_held`), keeping the order.
        """
        self.messages.append(message)
        if hold or self._held:
            self._held.append((message, turn_number))
        else:
            record_message(self.recorder, message, turn_number=turn_number)

    def _record_held(self) -> None:
        held, self._held = self._held, []
        for message, turn_number in held:
            record_message(self.recorder, message, turn_number=turn_number)

    def _turn_complete(self, result: ChatResult, *, tool_calls: int) -> None:
        self.recorder.publish(
            TurnComplete(
                chat_id=self.chat_id,
                turn_number=self.turn_number,
                finished_at=utcnow(),
                tool_calls=tool_calls,
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                cache_tokens=result.usage.cache_tokens,
            )
        )

    def _budget_spent(self, stats: RunStats) -> bool:
        return self.budget is not None and stats.usage.tokens_used >= self.budget

    def _skip_tools(self, calls: Sequence[ToolCall], reason: str) -> None:
        for call in calls:
            self._append(
                {"role": "tool", "tool_call_id": call.id, "content": reason},
                turn_number=self.turn_number,
            )

    def _close_dangling_tool_calls(self, reason: str) -> None:
        """Answer tool calls left without a result, so the history stays valid to send."""
        for call in self.pending_tool_calls():
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": reason})
