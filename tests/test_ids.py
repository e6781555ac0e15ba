from __future__ import annotations

import time
import uuid

from boonb.ids import new_id


def test_ids_are_well_formed_uuid7s() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        assert value.version == 7 and value.variant == uuid.RFC_4122
        again = uuid.UUID(str(value))
        assert again == value and hash(again) == hash(value) and again.bytes == value.bytes


def test_ids_carry_their_creation_millisecond_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= first.int >> 80 < second.int >> 80 <= after
    assert first < second
