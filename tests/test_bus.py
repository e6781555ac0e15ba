from __future__ import annotations

import threading
import uuid

from boonb.bus import Bus
from boonb.frames import Frame, MessageDelta, TurnStart
from tests.conftest import T0

CHAT = uuid.uuid4()


def _delta(i: int) -> MessageDelta:
    return MessageDelta(chat_id=CHAT, turn_number=i, text=str(i))


def test_subscribers_get_all_frames_or_only_their_types() -> None:
    bus = Bus()
    everything: list[Frame] = []
    deltas: list[Frame] = []
    bus.subscribe(everything.append)
    bus.subscribe(deltas.append, types={"message:delta"})
    start = TurnStart(chat_id=CHAT, turn_number=0, started_at=T0)
    bus.publish(start)
    bus.publish(_delta(1))
    assert everything == [start, _delta(1)]
    assert deltas == [_delta(1)]


def test_unsubscribe_stops_delivery() -> None:
    bus = Bus()
    got: list[Frame] = []
    stop = bus.subscribe(got.append)
    bus.publish(_delta(1))
    stop()
    stop()  # twice is harmless
    bus.publish(_delta(2))
    assert got == [_delta(1)]


def test_a_failing_subscriber_does_not_stop_the_others(caplog) -> None:
    bus = Bus()
    got: list[Frame] = []

    def broken(frame: Frame) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    bus.publish(_delta(1))
    assert got == [_delta(1)]
    assert "subscriber bug" in caplog.text


def test_publishing_from_many_threads_while_subscribing_delivers_every_frame() -> None:
    bus = Bus()
    got: list[Frame] = []
    bus.subscribe(got.append)

    def publish() -> None:
        for i in range(1_000):
            bus.publish(_delta(i))

    def churn() -> None:
        for _ in range(200):
            bus.subscribe(lambda f: None)()

    threads = [threading.Thread(target=publish) for _ in range(4)] + [
        threading.Thread(target=churn)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4_000


def test_wants_says_whether_a_frame_type_has_a_receiver() -> None:
    bus = Bus()
    assert not bus.wants("message:delta")
    unsubscribe = bus.subscribe(lambda f: None, types={"message:delta"})
    assert bus.wants("message:delta") and not bus.wants("turn:start")
    catch_all = bus.subscribe(lambda f: None)
    assert bus.wants("turn:start")
    catch_all()
    unsubscribe()
    assert not bus.wants("message:delta")
