"""Token budgets of a workflow run: hard ceilings over the agents in their scope.

A budget belongs to the run, a phase, a ``parallel`` call or one agent. Every model
call an agent makes is charged to each budget in its scope chain; the moment one is
spent, every agent running under it is cancelled and the run fails with "budget
exceeded: used X of Y tokens in phase P".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from boonb.errors import WorkflowError


class BudgetExceeded(WorkflowError):
    """A budget ran out; its agents were cancelled."""


@dataclass(eq=False)
class Budget:
    """A token ceiling over the agents in its scope; spending it cancels them all."""

    limit: int
    phase: str | None = None
    used: int = 0
    tasks: set[asyncio.Task[object]] = field(default_factory=set)
    exceeded: bool = False

    def charge(self, tokens: int) -> None:
        self.used += tokens
        if self.used >= self.limit and not self.exceeded:
            self.exceeded = True
            for task in self.tasks:
                task.cancel()

    def check(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.message())

    def message(self) -> str:
        return (
            f"budget exceeded: used {self.used:,} of {self.limit:,} tokens in phase "
            f"{self.phase or 'main'}"
        )


@dataclass(frozen=True)
class Scope:
    """The budgets an agent run is charged to, innermost first."""

    budgets: tuple[Budget, ...]

    def inner(self, budget: Budget | None) -> Scope:
        return Scope((budget, *self.budgets)) if budget is not None else self

    def charge(self, tokens: int) -> None:
        for budget in self.budgets:
            budget.charge(tokens)

    def enter(self, task: asyncio.Task[object]) -> None:
        for budget in self.budgets:
            budget.tasks.add(task)

    def leave(self, task: asyncio.Task[object]) -> None:
        for budget in self.budgets:
            budget.tasks.discard(task)

    def check(self) -> None:
        for budget in self.budgets:
            budget.check()
