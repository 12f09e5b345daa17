"""`event:` tags: which changes are events, and how a machine's events travel the buffer in a lane
of their own to its events topic (pure parts and the real SQLite buffer)."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from edge_agent.buffer import BufferDB, Reading
from edge_agent.buffer.readings import events_lane, lane_machine
from edge_agent.config.tag_event import TagEvent
from edge_agent.runtime.contract import WireContract
from edge_agent.runtime.events import EventWatch

NOW = 1_790_000_000_000
GUARD = TagEvent(on="rising", severity=700, message="Guard door open")
FAULT = TagEvent(on="change", severity=400, message={1: "Overload", 2: "Jam"}, type="fault")


def test_rising_edges_of_a_bit_and_every_new_code_are_events() -> None:
    watch = EventWatch({"guard": GUARD, "fault": FAULT}, last={})
    readings = [
        Reading("guard", NOW, False), Reading("fault", NOW, 0), Reading("temp", NOW, 20.0),
        Reading("guard", NOW + 1, True), Reading("fault", NOW + 1, 2),
        Reading("guard", NOW + 2, True), Reading("fault", NOW + 2, 2),  # unchanged: nothing
        Reading("guard", NOW + 3, False),  # falling: not watched
        Reading("guard", NOW + 4, True, "bad"),  # a bad value is no evidence
        Reading("guard", NOW + 5, True), Reading("fault", NOW + 5, 7),
    ]  # fmt: skip
    seen = watch.see(readings)
    assert [(e.id, e.source, e.message, e.severity) for e in seen.events] == [
        (f"guard:{NOW + 1}", "guard", "Guard door open", 700),
        (f"fault:{NOW + 1}", "fault", "Jam", 400),
        (f"guard:{NOW + 5}", "guard", "Guard door open", 700),
        (f"fault:{NOW + 5}", "fault", "code 7", 400),
    ]
    assert dict(seen.events[1].fields) == {"value": 2, "previous": 0}
    assert seen.events[1].type == "fault"
    assert seen.changed == {"guard": True, "fault": 7}


def test_the_last_committed_value_carries_over_a_restart() -> None:
    # Stopped with the bit clear; it was set while the agent was down: reported on the first read.
    watch = EventWatch({"guard": GUARD}, last={"guard": False, "gone": 3})
    assert watch.last == {"guard": False}
    assert [e.id for e in watch.see([Reading("guard", NOW, True)]).events] == [f"guard:{NOW}"]
    # The same value as before the restart: no event, nothing to store.
    again = EventWatch({"guard": GUARD}, last={"guard": True}).see([Reading("guard", NOW, True)])
    assert again.events == []
    assert again.changed == {}
    # Never read before: the first value is where watching starts.
    first = EventWatch({"guard": GUARD}, last={}).see([Reading("guard", NOW, True)])
    assert first.events == []
    assert first.changed == {"guard": True}


@pytest.mark.parametrize("falling", [True, False])
def test_falling_and_change_on_a_bit(falling: bool) -> None:
    spec = TagEvent(on="falling" if falling else "change")
    seen = EventWatch({"b": spec}, last={"b": True}).see(
        [Reading("b", NOW, False), Reading("b", NOW + 1, True)]
    )
    assert [e.ts for e in seen.events] == ([NOW] if falling else [NOW, NOW + 1])


def test_events_are_batched_in_their_own_lane_to_the_events_topic(tmp_path: Path) -> None:
    contract = WireContract("pc-1", "plant", "l1")
    db = BufferDB(tmp_path / "buffer.db", now_ms=NOW, encoder=contract.encode_batch)
    try:
        db.append("press-01", [Reading("temp", NOW, 21.5)])
        events = (
            EventWatch({"guard": GUARD}, {"guard": False})
            .see([Reading("guard", NOW + 1, True)])
            .events
        )
        ref = db.append_events("press-01", events, {"guard": True})
        assert ref is not None
        assert ref.device == events_lane("press-01") == "press-01/events"
        db.commit()
        assert db.event_state("press-01") == {"guard": True}
        batches = db.claim_backlog(1000, NOW, limit=5)
        by_lane = {b.device: b for b in batches}
        assert set(by_lane) == {"press-01", "press-01/events"}
        # The events batch is a wire events batch of this agent, and goes to the events topic.
        lane = by_lane["press-01/events"]
        topic = contract.batch_topic(lane.device)
        assert topic == "ms/v1/plant/l1/press-01/events"
        parsed = wire.parse_events(topic, lane.payload, NOW)
        assert (parsed.src, parsed.seq) == ("pc-1", lane.seq)
        assert [e.id for e in parsed.events] == [f"guard:{NOW + 1}"]
        assert lane.digest == wire.batch_digest(lane.payload)
        readings = by_lane["press-01"]
        assert contract.batch_topic("press-01") == "ms/v1/plant/l1/press-01/telemetry"
        wire.parse_telemetry(contract.batch_topic("press-01"), readings.payload, NOW)
        # A receipt for the events batch deletes it like any other.
        assert db.ack([(lane.seq, lane.digest)]) == 1
        # Exports and downsampling never take events for readings.
        exported: list[tuple[str, Reading]] = []
        db.export(0, lambda device, r: exported.append((device, r)))
        assert exported == [("press-01", Reading("temp", NOW, 21.5))]
        assert lane_machine("press-01/events") == ("press-01", True)
    finally:
        db.close()
