"""The workflow result cache: an agent whose inputs did not change is not run again.

The key is a SHA-256 over the canonical JSON of everything that determines an
agent's result (prompt, input, model, tools, options and a version salt), so a hit
does not depend on where the agent stands in the script. Lookups go to an in-memory
LRU first, then to the ``workflow_cache`` table, so results carry across kernels
and days. Table reads are blocking, so the engine calls :meth:`get` in a thread.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue

from boonb.store import Store, make_row

# Bump when a change to boonb alters what an agent would return for the same inputs.
CACHE_SALT = "boonb-workflow-cache-v1"


def cache_key(
    *,
    prompt: str,
    input: JsonValue,
    model: str,
    tools: Sequence[str],
    options: dict[str, JsonValue] | None = None,
) -> str:
    """SHA-256 over the canonical JSON of an agent's inputs."""
    canonical = json.dumps(
        {
            "salt": CACHE_SALT,
            "prompt": prompt,
            "input": input,
            "model": model,
            "tools": sorted(tools),
            "options": options or {},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Hit:
    """A cached agent result, wrapped so that a cached ``None`` is not a miss (``get`` -> None)."""

    result: JsonValue


class ResultCache:
    """Workflow agent results by cache key, in memory and in the ``workflow_cache`` table.

    ``get(key)`` answers a ``Hit`` or None; ``put`` stores a result. Both block on the
    database, so call them from a thread, not the event loop.
    """

    def __init__(self, store: Store, *, size: int = 100) -> None:
        self.store = store
        self.size = size
        self._memory: OrderedDict[str, JsonValue] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Hit | None:
        """The stored result for ``key``, from memory or the table (blocking; use a thread)."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return Hit(self._memory[key])
        self.store.writer.flush()  # a result put moments ago may still be queued
        with self.store.db.connection() as con:
            row = con.execute("SELECT result FROM workflow_cache WHERE hash = ?", [key]).fetchone()
        if row is None:
            return None
        result: JsonValue = json.loads(row[0]) if row[0] is not None else None
        self._remember(key, result)
        return Hit(result)

    def put(self, key: str, *, agent_id: str, result: JsonValue) -> None:
        """Keep a result (memory now, the table through the writer)."""
        self._remember(key, result)
        self.store.writer.enqueue(
            make_row(
                "workflow_cache",
                {
                    "hash": key,
                    "agent_id": agent_id,
                    "result": result,
                    "created_at": datetime.now(UTC),
                },
                json_columns=frozenset({"result"}),
                action="upsert",
            )
        )

    def _remember(self, key: str, result: Any) -> None:
        with self._lock:
            self._memory[key] = result
            self._memory.move_to_end(key)
            while len(self._memory) > self.size:
                self._memory.popitem(last=False)
