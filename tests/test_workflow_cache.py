from __future__ import annotations

from pathlib import Path

from boonb.store import Store
from boonb.workflow.cache import ResultCache, cache_key

BASE = dict(prompt="Summarise", input={"doc": 1}, model="sim-chat", tools=["read_file"])


def test_the_key_covers_every_input_and_ignores_tool_order() -> None:
    key = cache_key(**BASE)  # type: ignore[arg-type]
    assert len(key) == 64
    assert cache_key(**{**BASE, "tools": ["read_file"]}) == key  # type: ignore[arg-type]
    for change in (
        {"prompt": "Other"},
        {"input": {"doc": 2}},
        {"model": "m2"},
        {"tools": ["grep"]},
        {"options": {"max_turns": 3}},
    ):
        assert cache_key(**{**BASE, **change}) != key  # type: ignore[arg-type]
    two = cache_key(**{**BASE, "tools": ["a", "b"]})  # type: ignore[arg-type]
    assert cache_key(**{**BASE, "tools": ["b", "a"]}) == two  # type: ignore[arg-type]


def test_results_survive_a_new_cache_on_the_same_database(db_path: Path) -> None:
    store = Store(db_path)
    cache = ResultCache(store, size=2)
    key = cache_key(**BASE)  # type: ignore[arg-type]
    assert cache.get(key) is None
    cache.put(key, agent_id="writer", result={"text": "done"})
    assert cache.get(key).result == {"text": "done"}  # type: ignore[union-attr]
    store.close()
    other = Store(db_path)
    fresh = ResultCache(other)  # "a new kernel": empty memory, same table
    hit = fresh.get(key)
    assert hit is not None and hit.result == {"text": "done"}
    other.close()


def test_the_memory_keeps_only_the_newest_entries(db_path: Path) -> None:
    store = Store(db_path)
    cache = ResultCache(store, size=2)
    for i in range(3):
        cache.put(f"k{i}", agent_id="a", result=i)
    assert list(cache._memory) == ["k1", "k2"]
    assert cache.get("k0").result == 0  # type: ignore[union-attr]  # from the table
    store.close()
