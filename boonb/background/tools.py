"""The subagent tools: ``spawn_subagent``, ``subagent_status`` and ``subagent_result``.

They act for the agent that calls them (:func:`boonb.agent.loop.calling_agent`): a task
spawned hangs under the calling tool call in the trace tree, and an agent may only ask
about the tasks it spawned. Every failure is a ``ToolError`` whose message the model can
act on; none ever waits for a subagent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue

from boonb.agent.loop import calling_agent
from boonb.agent.recorder import calling_trace
from boonb.agent.tools.definition import Tool, tool
from boonb.agent.tools.errors import ToolError
from boonb.background.errors import TaskError
from boonb.background.records import shown_state
from boonb.background.service import Tasks
from boonb.frames import TaskUpdate


def subagent_tools(tasks: Callable[[], Tasks]) -> list[Tool]:
    """The three tools, acting on the service ``tasks()`` returns (read at each call)."""

    @tool(kernel_only=True)
    async def spawn_subagent(
        prompt: str,
        model: str | None = None,
        tools: list[str] | None = None,
        budget: int | None = None,
        metadata: dict[str, JsonValue] | None = None,
    ) -> dict[str, Any]:
        """Start a subagent in the background on a task; returns its task_id at once.

        It does not wait: carry on with your own work. You are told in a later turn when
        it has finished; then collect its answer with subagent_result.

        Args:
            prompt: The whole task for the subagent; it sees nothing of your conversation.
            model: Model to run it on; default: your kernel's model.
            tools: Names of the tools it may use; default: the usual tools, without the
                subagent tools.
            budget: Token budget of its run (input plus output tokens).
            metadata: Free-form labels; "name" is shown as the task's title.

        """
        caller = _caller()
        try:
            update = tasks().spawn(
                prompt,
                model=model,
                tools=tools,
                budget=budget,
                metadata=metadata,
                parent=calling_trace(),
                spawned_by=caller,
            )
        except TaskError as exc:
            raise ToolError(str(exc)) from None
        # The row is on disk before the model hears of the task, so a kernel killed right
        # after still lists it (as interrupted, to retry). A commit, not the subagent.
        await _written(tasks())
        return {"task_id": str(update.task_id), "status": "pending"}

    @tool(kernel_only=True)
    async def subagent_status(task_id: str) -> dict[str, Any]:
        """Where a subagent you spawned stands: status, progress, when it started and ended.

        Args:
            task_id: The task_id spawn_subagent returned.

        """
        # Off the engine: a task of another kernel is read from the table, which may wait
        # out another process's lock.
        update = await asyncio.to_thread(_own, tasks(), task_id)
        status: dict[str, Any] = {
            "task_id": str(update.task_id),
            "status": shown_state(update.state),
        }
        if update.progress is not None:
            status["progress"] = _progress(update)
        if update.started_at is not None:
            status["started_at"] = update.started_at.isoformat()
            status["elapsed_s"] = _elapsed(update)
        if update.finished_at is not None:
            status["finished_at"] = update.finished_at.isoformat()
        if update.error is not None:
            status["error"] = update.error
        return status

    @tool(kernel_only=True)
    async def subagent_result(task_id: str) -> dict[str, Any]:
        """The answer of a subagent you spawned, once it has completed.

        Before that it says the task is not ready yet, with its status and progress.

        Args:
            task_id: The task_id spawn_subagent returned.

        """
        service = tasks()
        await asyncio.to_thread(_own, service, task_id)  # off the engine, as in status
        try:
            outcome = await asyncio.to_thread(service.result, task_id)
        except TaskError as exc:
            raise ToolError(str(exc)) from None
        update = outcome.task
        answer: dict[str, Any] = {
            "task_id": str(update.task_id),
            "status": shown_state(update.state),
        }
        if outcome.result is not None:
            answer["result"] = outcome.result.model_dump(mode="json")
        elif update.error is not None:
            answer["error"] = update.error
        else:
            answer["message"] = _not_ready(update)
        return answer

    return [spawn_subagent, subagent_status, subagent_result]


async def _written(service: Tasks) -> None:
    """Until the rows enqueued so far are committed (at once while the disk is full)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def settle(committed: bool) -> None:
        if not done.done():
            done.set_result(committed)

    def answer(committed: bool) -> None:  # on the writer's thread
        loop.call_soon_threadsafe(settle, committed)

    service.store.writer.when_written(answer, outlive_stall=False)
    await done


def _caller() -> uuid.UUID | None:
    agent = calling_agent()
    return agent.chat_id if agent is not None else None


def _own(service: Tasks, task_id: str) -> TaskUpdate:
    """The task, if the calling agent spawned it; a ToolError the model can read if not."""
    try:
        service.check_spawner(task_id, _caller())
        return service.get(task_id)
    except TaskError as exc:
        raise ToolError(str(exc)) from None


def _elapsed(update: TaskUpdate) -> float | None:
    if update.started_at is None:
        return None
    end = update.finished_at or datetime.now(UTC)
    return round((end - update.started_at).total_seconds(), 1)


def _progress(update: TaskUpdate) -> dict[str, Any]:
    progress = update.progress
    assert progress is not None
    shown: dict[str, Any] = {
        "turn": progress.turn,
        "max_turns": progress.max_turns,
        "tokens_used": progress.tokens_used,
    }
    if progress.last_tool is not None:
        shown["last_tool"] = progress.last_tool
    if progress.cost_usd is not None:
        shown["cost_usd"] = progress.cost_usd
    return shown


def _not_ready(update: TaskUpdate) -> str:
    if update.state == "pending":
        return (
            f"not ready yet: task {update.task_id} is pending (waiting for a free slot); "
            "you will be told when it finishes"
        )
    progress = update.progress
    done = f"turn {progress.turn} of {progress.max_turns}" if progress is not None else "started"
    last = f", last tool {progress.last_tool}" if progress and progress.last_tool else ""
    return (
        f"not ready yet: task {update.task_id} is {update.state} for {_elapsed(update)} s "
        f"({done}{last}); you will be told when it finishes"
    )
