"""The wire between a remote agent and its kernel: items, batches and replies, without Dask.

Batches go through msgpack as ``Worker.log_event`` sends them, and replies through pickle
as an actor's reply travels, so what passes here passes on a cluster.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest

from boonb.agent.loop import AgentResult, RunStats
from boonb.errors import AgentError, ExecutorError, WorkerLost
from boonb.executors import wire
from boonb.frames import CacheSegment, ModelCallComplete, TurnStart
from boonb.providers import CapabilityError, Usage
from tests.conftest import make_trace


def over_the_wire(message: dict[str, Any]) -> Any:
    """What the kernel receives of an event a worker logs."""
    return msgpack.unpackb(msgpack.packb(message))


def test_every_item_kind_round_trips_through_a_msgpack_batch() -> None:
    chat_id = uuid.uuid4()
    frame = ModelCallComplete(
        trace=make_trace(
            chat_id=chat_id,
            kind="model",
            input={"new_messages": [{"role": "user", "content": "héllo"}]},
            output={"content": "hi", "tool_calls": []},
            input_tokens=12,
            cost_usd=0.25,
        ),
        cache=[CacheSegment(segment="system", tokens=8, hit_tokens=0, miss_tokens=8, hash="ab")],
    )
    snapshot = {"chat_id": str(chat_id), "state": "in_progress", "messages": [{"role": "user"}]}
    items = [
        wire.Item(str(chat_id), 1, "chat", wire.json_data({"provider": "sim", "title": "t"})),
        wire.Item(str(chat_id), 2, "frame", wire.frame_data(frame)),
        wire.Item(str(chat_id), 3, "message", wire.json_data({"message": {"role": "user"}})),
        wire.Item(str(chat_id), 4, "snapshot", wire.json_data({"snapshot": snapshot})),
        wire.Item(str(chat_id), 5, "end", wire.json_data({"outcome": "done"})),
    ]
    assert {item.kind for item in items} == wire.ITEM_KINDS

    received = wire.items_of(over_the_wire(wire.batch(items)))

    assert received == items
    assert wire.frame_of(received[1].data) == frame
    assert wire.json_of(received[3].data) == {"snapshot": snapshot}


def test_a_batch_of_another_wire_version_or_a_malformed_item_is_refused() -> None:
    item = wire.Item("run", 1, "end", b"{}")
    newer = {**wire.batch([item]), "v": wire.WIRE_VERSION + 1}
    with pytest.raises(wire.WireError, match="install the same version on the workers"):
        wire.items_of(over_the_wire(newer))
    for bad in (
        ["run", 1, "pickle", b"\x80\x04"],  # a kind the kernel does not read
        ["run", 0, "end", b"{}"],  # runs count items from 1
        ["run", 1, "end", "{}"],  # data is bytes
        ["run", 1, "end"],
    ):
        with pytest.raises(wire.WireError, match="malformed item"):
            wire.items_of({"v": wire.WIRE_VERSION, "items": [bad]})
    with pytest.raises(wire.WireError):
        wire.items_of([1, 2])


def test_a_batcher_splits_at_512_kb_and_sends_a_larger_item_alone_in_order() -> None:
    sent: list[dict[str, Any]] = []
    chunk = b"x" * (200 * 1024)
    huge = b"y" * (700 * 1024)
    items = [wire.Item("run", seq, "frame", chunk) for seq in range(1, 6)]
    items.insert(3, wire.Item("run", 99, "frame", huge))

    async def send_all() -> None:
        batcher = wire.Batcher(sent.append)
        for item in items:
            batcher.add(item)
        batcher.flush()

    asyncio.run(send_all())

    batches = [wire.items_of(over_the_wire(b)) for b in sent]
    assert [i for b in batches for i in b] == items  # nothing lost, reordered or split
    sizes = [sum(len(i.data) for i in b) for b in batches]
    assert [len(b) for b in batches] == [2, 1, 1, 2]
    assert all(
        size <= wire.MAX_BATCH_BYTES for b, size in zip(batches, sizes, strict=True) if len(b) > 1
    )
    assert batches[2] == [items[3]]  # the 700 KB item went alone


def test_a_batcher_sends_what_it_holds_without_being_told() -> None:
    sent: list[dict[str, Any]] = []

    async def one_item() -> None:
        arrived = asyncio.Event()

        def send(batch: dict[str, Any]) -> None:
            sent.append(batch)
            arrived.set()

        batcher = wire.Batcher(send)
        batcher.add(wire.Item("run", 1, "end", b"{}"))
        assert sent == []  # held for the next ones
        await asyncio.wait_for(arrived.wait(), 10)

    asyncio.run(one_item())
    assert [wire.items_of(b) for b in sent] == [[wire.Item("run", 1, "end", b"{}")]]


def test_a_reply_gives_back_the_result_a_local_run_returns() -> None:
    result = AgentResult(
        chat_id=uuid.uuid4(),
        content="done: 5",
        stop_reason="final",
        stats=RunStats(
            turns=2,
            tool_calls=1,
            usage=Usage(10, 4, cache_tokens=3, reasoning_tokens=1, reported=False),
            cost=0.5,
        ),
        wall_time_s=0.25,
    )
    reply = pickle.loads(pickle.dumps(wire.reply(str(result.chat_id), 7, "done", result=result)))
    assert reply["last_seq"] == 7
    assert wire.result_of(reply) == result


def test_a_failed_or_cancelled_reply_raises_what_a_local_run_raises() -> None:
    failed = wire.reply("run", 3, "failed", error=AgentError("the model call failed: 500"))
    with pytest.raises(AgentError, match="the model call failed: 500"):
        wire.result_of(failed)
    # A subclass travels as itself when the kernel knows it...
    refused = wire.reply("run", 0, "failed", error=CapabilityError("model x cannot see"))
    with pytest.raises(CapabilityError, match="cannot see"):
        wire.result_of(refused)
    # ...and a crash on the worker as an ExecutorError that says where to look.
    crashed = wire.reply("run", 2, "failed", error=KeyError("oops"))
    with pytest.raises(ExecutorError, match="crashed on its Dask worker.*worker's log"):
        wire.result_of(crashed)
    with pytest.raises(asyncio.CancelledError):
        wire.result_of(wire.reply("run", 4, "cancelled"))
    with pytest.raises(ExecutorError, match="install the same boonb on the workers"):
        wire.result_of({**wire.reply("run", 4, "cancelled"), "wire": 99})


def test_a_frame_item_keeps_times_as_they_were() -> None:
    started = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    frame = TurnStart(chat_id=uuid.uuid4(), turn_number=3, started_at=started)
    assert wire.frame_of(wire.frame_data(frame)) == frame


def test_a_run_the_worker_stopped_for_lack_of_pings_raises_worker_lost_not_a_cancel() -> None:
    why = WorkerLost("the Dask worker stopped this agent: it had not heard from this kernel")
    expired = pickle.loads(pickle.dumps(wire.reply("run", 5, "expired", error=why)))
    with pytest.raises(WorkerLost, match="had not heard from this kernel"):
        wire.result_of(expired)
    # Without its message (an odd reply), it still says what happened.
    with pytest.raises(WorkerLost, match="check the network"):
        wire.result_of({**expired, "error": None})
