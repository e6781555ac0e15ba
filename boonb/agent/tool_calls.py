"""One tool call of a turn, traced: run it, cap its output, and make it the text the model reads.

Each call gets a ``tool_trace:start`` frame before and a ``tool_traces`` row after, and a
raised error becomes an ``error`` outcome plus a tool message the model can read.
"""

from __future__ import annotations

import asyncio
import uuid
from contextvars import ContextVar
from typing import Protocol

from pydantic import JsonValue

from boonb.agent.messages import dumps
from boonb.agent.recorder import Recorder, json_or_text
from boonb.agent.tools.context import ToolContext
from boonb.agent.tools.errors import ToolError
from boonb.agent.tools.registry import Tool
from boonb.frames import Outcome
from boonb.providers import ToolCall

ToolOutcome = tuple[str, bool]
"""What the model reads of a tool call's result, and whether the call failed."""


class ToolCaller(Protocol):
    """What a tool call needs of the agent that makes it (a :class:`boonb.agent.loop.Agent`)."""

    recorder: Recorder
    tools: dict[str, Tool]
    context: ToolContext
    max_tool_output: int
    turn_number: int


# The agent whose tool call runs in this task: tools that act for their caller (the subagent
# tools) read it, as boonb.agent.loop.calling_agent. Each tool call runs in a task of its own,
# so concurrent calls see their own.
calling_agent_var: ContextVar[ToolCaller | None] = ContextVar("boonb_calling_agent", default=None)


async def call_tool(
    agent: ToolCaller, call: ToolCall, *, parent_id: uuid.UUID | None
) -> ToolOutcome:
    """Run one tool call; returns the text the model reads and whether it failed.

    ``parent_id`` is the trace of the model call that asked for it.
    """
    arguments: JsonValue = json_or_text(call.arguments)
    trace = agent.recorder.open(agent.turn_number, parent_id=parent_id)
    agent.recorder.tool_started(trace, name=call.name, call_id=call.id, arguments=arguments)
    outcome: Outcome = "success"
    error: str | None = None
    output: JsonValue = None
    text = ""
    done_calling = agent.recorder.calling(trace)  # a chat the tool starts hangs under it
    calling = calling_agent_var.set(agent)
    try:
        tool = agent.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(agent.tools)) or "none"
            raise ToolError(f"there is no tool named {call.name!r}; available tools: {known}")
        output, text = cap_output(
            await tool.invoke(call.arguments, agent.context), agent.max_tool_output
        )
    except asyncio.CancelledError:
        agent.recorder.tool_finished(
            trace,
            name=call.name,
            call_id=call.id,
            arguments=arguments,
            output=None,
            outcome="cancelled",
        )
        raise
    except Exception as exc:  # a tool's failure is the model's to read, not the run's end
        outcome, error = "error", _describe(exc)
    finally:
        calling_agent_var.reset(calling)
        done_calling()
    agent.recorder.tool_finished(
        trace,
        name=call.name,
        call_id=call.id,
        arguments=arguments,
        output=output,
        outcome=outcome,
        error=error,
    )
    return (text, False) if error is None else tool_outcome(None, error)


def cap_output(output: JsonValue, limit: int) -> tuple[JsonValue, str]:
    """A tool's output as it is stored, and the text the model reads of it.

    Past ``limit`` characters both are the text's start with a note saying so, so one huge
    output cannot fill the kernel's memory or the database (the trace, the message and the
    snapshot all keep it). The text is made once: a large value is serialised only here.
    """
    text = output if isinstance(output, str) else dumps(output)
    if len(text) <= limit:
        return output, text
    capped = (
        f"{text[:limit]}\n[boonb: output truncated: the tool returned {len(text):,} "
        f"characters; the first {limit:,} are kept. Ask for less, e.g. a range or a pattern.]"
    )
    return capped, capped


def tool_outcome(output: JsonValue, error: str | None) -> ToolOutcome:
    """The tool message a call's stored output or error becomes."""
    if error is not None:
        return f"Error: {error}", True
    return output if isinstance(output, str) else dumps(output), False


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ToolError) else f"{type(exc).__name__}: {text}"
