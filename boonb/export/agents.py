"""Which chat ran each workflow agent, learnt from the model calls that hang under it.

An ``agent`` row names the agent but not its chat or provider, which the conventions ask
of an ``invoke_agent`` span (``gen_ai.conversation.id``, ``gen_ai.provider.name``). Its
model calls carry both, and hang directly under it. An agent's row is recorded when it
ends, after its model calls, so the live export has seen them by then; the backfill
feeds a tree's model calls first. Both so give the agent span the same attributes.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from boonb.frames import TraceRecord

REMEMBERED = 10_000
"""Parents remembered at most. Most model calls hang under no agent (a chat's own calls,
a subagent's under a tool call); their entries are never asked for and age out."""


class AgentChats:
    """Remembers, per parent row, the chat and provider of the model calls under it."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._by_parent: OrderedDict[UUID, tuple[UUID, str | None]] = OrderedDict()

    def saw_model_call(self, record: TraceRecord, provider: str | None) -> None:
        if record.parent_id is None:
            return
        self._by_parent[record.parent_id] = (record.chat_id, provider)
        if len(self._by_parent) > self.limit:
            self._by_parent.popitem(last=False)

    def of_agent(self, record: TraceRecord) -> tuple[UUID | None, str | None]:
        """The chat and provider of an agent row's model calls; Nones if it made none (cached)."""
        return self._by_parent.pop(record.id, (None, None))
