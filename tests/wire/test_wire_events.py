"""Machine event batches on `ms/v1/{site}/{line}/{machine}/events`: what a device maker may send,
and what the hub keeps of a batch with a bad event in it."""

from __future__ import annotations

import json

import pytest

import wire

NOW = 1_790_000_000_000
TOPIC = "ms/v1/plant-a/line-3/press-01/events"


def event(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "guard-open:7",
        "ts": NOW - 1000,
        "source": "guard_door",
        "type": "alarm",
        "severity": 700,
        "message": "Guard door open",
        "state": "active",
        "fields": {"door": 2, "operator_present": False},
    }
    return base | over


def payload(*events: dict[str, object], seq: int = 4) -> bytes:
    return json.dumps({"v": 1, "src": "press-gw", "seq": seq, "events": list(events)}).encode()


def test_a_batch_round_trips_with_its_identity_from_the_topic() -> None:
    parsed = wire.parse_events(TOPIC, payload(event(), event(id="e2", state=None)), NOW)
    assert (parsed.site, parsed.line, parsed.machine) == ("plant-a", "line-3", "press-01")
    assert (parsed.src, parsed.seq) == ("press-gw", 4)
    first = parsed.events[0]
    assert (first.id, first.severity, first.state) == ("guard-open:7", 700, "active")
    assert dict(first.fields) == {"door": 2, "operator_present": False}
    assert parsed.events[1].state is None
    again = wire.parse_events(TOPIC, wire.encode_events("press-gw", 4, parsed.events), NOW)
    assert again.events == parsed.events
    assert wire.events_topic("plant-a", "line-3", "press-01") == TOPIC
    assert isinstance(wire.parse_topic(TOPIC), wire.MachineTopic)


@pytest.mark.parametrize(
    ("bad", "reason", "field"),
    [
        ({"severity": 0}, "bad_field", "events[1].severity"),
        ({"severity": 1001}, "bad_field", "events[1].severity"),
        ({"severity": True}, "bad_field", "events[1].severity"),  # never 1
        ({"id": "has space"}, "bad_field", "events[1].id"),
        ({"message": "PLC\x00\x00"}, "nul_in_string", "events[1].message"),
        ({"state": "acknowledged"}, "bad_field", "events[1].state"),
        ({"ts": NOW + 3_600_000}, "ts_out_of_range", "events[1].ts"),
        ({"fields": {"bad key": 1}}, "bad_field", "events[1].fields"),
        ({"colour": "red"}, "bad_field", "events[1].colour"),
    ],
)
def test_a_bad_event_is_refused_alone_with_its_field(
    bad: dict[str, object], reason: str, field: str
) -> None:
    body = payload(event(id="ok-0"), event(id="bad-1") | bad, event(id="ok-2"))
    kept, refused = wire.parse_events_partial(TOPIC, body, NOW)
    assert [e.id for e in kept.events] == ["ok-0", "ok-2"]
    [one] = refused
    assert one.index == 1
    assert one.error.reason == reason
    assert (one.error.field or "").startswith(field), one.error.field
    with pytest.raises(wire.PayloadError) as strict:
        wire.parse_events(TOPIC, body, NOW)
    assert strict.value.reason == reason


def test_the_whole_message_goes_when_nothing_of_it_can_be_kept() -> None:
    with pytest.raises(wire.PayloadError) as all_bad:
        wire.parse_events_partial(TOPIC, payload(event(severity=0)), NOW)
    assert all_bad.value.field == "events[0].severity"
    too_many = payload(*(event(id=f"e{i}") for i in range(wire.MAX_EVENTS + 1)))
    with pytest.raises(wire.PayloadError, match="1001 events, the limit is 1000"):
        wire.parse_events_partial(TOPIC, too_many, NOW)
    with pytest.raises(wire.PayloadError) as envelope:
        wire.parse_events_partial(TOPIC, payload(event(), seq=-1), NOW)
    assert envelope.value.field == "seq"
    with pytest.raises(wire.PayloadError) as topic:
        wire.parse_events("ms/v1/plant-a/line-3/press-01/telemetry", payload(event()), NOW)
    assert topic.value.reason == "bad_topic"
