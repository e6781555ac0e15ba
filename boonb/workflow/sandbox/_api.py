"""The workflow API as a script sees it (runs in the worker).

Every function here only marshals a call ``{"op", "params"}`` to the host and returns its
reply; what an op means (running an agent, sharing a budget, namespacing a phase) is the
host handler's business, so later semantics need no change in the sandbox.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class WorkflowError(Exception):
    """An API call the host refused or that failed.

    Scripts may catch it: a workflow can fall back when one agent fails, and an uncaught
    one fails the run with its message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Transport(Protocol):
    """How the script's API reaches the host: ``call`` waits for a reply, ``notify`` does not."""

    def call(self, op: str, params: dict[str, Any]) -> Any: ...

    def notify(self, op: str, params: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Budget:
    """A token (or step) ceiling, passed by value in the params of the ops that take one."""

    id: str
    limit: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "limit": self.limit, "kind": self.kind}


@dataclass(frozen=True, slots=True, eq=False)
class AgentRef:
    """A registered sub-agent: plain data (id and spec) plus ``run``."""

    id: str
    prompt: str
    model: str | None
    tools: tuple[str, ...] | None
    budget: Budget | None
    cache: bool
    _api: WorkflowApi = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "model": self.model,
            "tools": None if self.tools is None else list(self.tools),
            "budget": None if self.budget is None else self.budget.to_json(),
            "cache": self.cache,
        }

    def run(self, input: Any = None, *, budget: Budget | None = None) -> Any:
        """Run the agent on ``input`` (op ``agent.run``) and return its result."""
        return self._api.call(
            "agent.run", {"agent": self.to_json(), "input": input, "budget": _budget(budget)}
        )


# What a script may read on the API's objects (the policy refuses everything else).
API_ATTRIBUTES: dict[type, frozenset[str]] = {
    AgentRef: frozenset({"budget", "cache", "id", "model", "prompt", "run", "tools"}),
    Budget: frozenset({"id", "kind", "limit"}),
    WorkflowError: frozenset({"args", "message"}),
}


def _budget(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Budget):
        raise TypeError("budget= takes an object made by budget(limit)")
    return value.to_json()


def _check_str(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")


class WorkflowApi:
    """The names a script sees (``agent``, ``parallel``, ... ``args``), bound to one run."""

    def __init__(
        self, transport: Transport, args: Mapping[str, Any], *, max_log_bytes: int
    ) -> None:
        self._transport = transport
        self._args = types.MappingProxyType(json.loads(json.dumps(dict(args))))
        self._max_log_bytes = max_log_bytes
        self._budgets = 0

    def names(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "parallel": self.parallel,
            "pipeline": self.pipeline,
            "phase": self.phase,
            "budget": self.budget,
            "log": self.log,
            "args": self._args,
            "WorkflowError": WorkflowError,
        }

    @property
    def args(self) -> Mapping[str, Any]:
        return self._args

    def call(self, op: str, params: dict[str, Any]) -> Any:
        return self._transport.call(op, params)

    def agent(
        self,
        id: str,
        prompt: str,
        model: str | None = None,
        tools: list[str] | tuple[str, ...] | None = None,
        budget: Budget | None = None,
        cache: bool = True,
    ) -> AgentRef:
        """Register a sub-agent (op ``agent.register``) and return its handle."""
        _check_str("id", id)
        _check_str("prompt", prompt)
        _check_str("model", model, optional=True)
        if tools is not None and not (
            isinstance(tools, list | tuple) and all(isinstance(t, str) for t in tools)
        ):
            raise TypeError("tools must be a list of tool names")
        if not isinstance(cache, bool):
            raise TypeError("cache must be True or False")
        _budget(budget)
        ref = AgentRef(
            id=id,
            prompt=prompt,
            model=model,
            tools=None if tools is None else tuple(tools),
            budget=budget,
            cache=cache,
            _api=self,
        )
        self.call("agent.register", {"agent": ref.to_json()})
        return ref

    def _items(self, items: Any, what: str) -> list[dict[str, Any]]:
        if not isinstance(items, list | tuple):
            raise TypeError(f"{what} takes a list of agents or (agent, input) pairs")
        out: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, AgentRef):
                out.append({"agent": item.to_json(), "input": None})
            elif (
                isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], AgentRef)
            ):
                out.append({"agent": item[0].to_json(), "input": item[1]})
            else:
                raise TypeError(f"{what} takes agents or (agent, input) pairs")
        return out

    def parallel(self, items: Any, budget: Budget | None = None) -> Any:
        """Run agents concurrently in the engine (op ``parallel``); a list in input order."""
        return self.call(
            "parallel", {"items": self._items(items, "parallel"), "budget": _budget(budget)}
        )

    def pipeline(self, steps: Any, input: Any = None, budget: Budget | None = None) -> Any:
        """Run steps in order, each on the previous output.

        Agent steps go through ``agent.run``; script functions are called locally.
        """
        if not isinstance(steps, list | tuple):
            raise TypeError("pipeline takes a list of steps")
        value = input
        for step in steps:
            if isinstance(step, AgentRef):
                value = step.run(value, budget=budget)
            elif isinstance(step, types.FunctionType):
                value = step(value)
            else:
                raise TypeError("a pipeline step is an agent or a function of the script")
        return value

    def phase(self, name: str, agents: Any = (), budget: Budget | None = None) -> Any:
        """Run agents as a named phase with its own budget (op ``phase``)."""
        _check_str("name", name)
        return self.call(
            "phase",
            {"name": name, "items": self._items(agents, "phase"), "budget": _budget(budget)},
        )

    def budget(self, limit: int, kind: str = "tokens") -> Budget:
        """A budget object the other primitives accept."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ValueError("a budget limit is a positive integer")
        if kind not in ("tokens", "steps"):
            raise ValueError('a budget kind is "tokens" or "steps"')
        self._budgets += 1
        return Budget(id=f"budget-{self._budgets}", limit=limit, kind=kind)

    def log(self, message: Any) -> None:
        """Send a log line to the host (op ``log``; no reply, order kept)."""
        text = str(message)
        if len(text) > self._max_log_bytes:
            text = text[: self._max_log_bytes] + " [truncated]"
        self._transport.notify("log", {"message": text})
