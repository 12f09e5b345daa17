"""The hub's check that a batch's `src` belongs to the broker identity that owns its topic."""

from __future__ import annotations

from hub.devices.identities import Identity
from hub.ingest.message import Incoming
from hub.ingest.owners import Owners
from hub.storage import CompactReading, EventBatch, EventRow, TelemetryBatch

OWNERS = Owners.of(
    [
        Identity("press-gw", "device", "s1", "l1", ("press-01",)),
        Identity("pc-3", "agent", "s1", "l3"),
        Identity("pc-3b", "agent", "s1", "l3"),
    ]
)
MSG = Incoming("ms/v1/s1/l1/press-01/telemetry", b"{}", 1, 1, 0)


def _batch(line: str, machine: str, src: str, *, receipt: bool = True) -> TelemetryBatch:
    readings = [CompactReading("t", 1, 1.0, "good")]
    return TelemetryBatch("s1", line, machine, src, 1, readings, "d", receipt=receipt)


def test_owned_topics_take_only_their_owners_src() -> None:
    assert OWNERS.judge(MSG, _batch("l1", "press-01", "press-gw")) is None
    refused = OWNERS.judge(MSG, _batch("l1", "press-01", "pc-3"))
    assert refused is not None
    assert refused.reason == "not_authorized"
    assert refused.seq is None  # never receipted, to anyone
    assert "press-gw" in refused.message
    assert OWNERS.judge(MSG, _batch("l3", "oven-02", "pc-3b")) is None  # any agent of the line
    assert OWNERS.judge(MSG, _batch("l3", "oven-02", "press-gw")) is not None


def test_a_src_no_identity_has_is_let_through() -> None:
    # Nobody to impersonate; and what a device added a moment ago looks like before the hub
    # reads the identities again.
    assert OWNERS.judge(MSG, _batch("l1", "press-01", "new-gw")) is None


def test_uncovered_topics_and_other_dialects_are_judged_as_before() -> None:
    assert OWNERS.judge(MSG, _batch("l9", "m", "anyone")) is None  # a static-ACL broker
    assert OWNERS.judge(MSG, _batch("l1", "press-01", "spBv1.0/g/n", receipt=False)) is None


def test_a_machine_may_have_several_device_publishers() -> None:
    owners = Owners.of(
        [
            Identity("gw-a", "device", "s1", "l1", ("press-01",)),
            Identity("gw-b", "device", "s1", "l1", ("press-01", "press-02")),
        ]
    )
    assert owners.judge(MSG, _batch("l1", "press-01", "gw-a")) is None
    assert owners.judge(MSG, _batch("l1", "press-01", "gw-b")) is None
    assert owners.judge(MSG, _batch("l1", "press-02", "gw-a")) is not None


def test_events_are_judged_like_telemetry() -> None:
    # A device identity must not raise (or clear) another machine's alarms under another's src.
    def events(src: str) -> EventBatch:
        row = EventRow("guard:1", 1, "guard", "alarm", 700, "Guard door open", "active", "{}")
        return EventBatch("s1", "l1", "press-01", src, 1, [row], "d")

    assert OWNERS.judge(MSG, events("press-gw")) is None
    refused = OWNERS.judge(MSG, events("pc-3"))
    assert refused is not None
    assert refused.reason == "not_authorized"
