"""The conformance view's judgement of single messages (pure): what the CLI prints and the API
sends for accepted, partly refused and refused messages, with the reason and the field."""

from __future__ import annotations

import json
import time

import wire
from hub.devices import Identity
from hub.devices.watch import Judged, field_of, judge, topics_of
from hub.ingest.message import Incoming
from hub.ingest.owners import Owners

TOPIC = "ms/v1/s1/l1/press-01/telemetry"
OWNERS = Owners.of(
    [
        Identity("press-gw", "device", "s1", "l1", ("press-01",)),
        Identity("line-pc", "agent", "s1", "l2"),
    ]
)


def _msg(payload: bytes, topic: str = TOPIC) -> Incoming:
    return Incoming(topic, payload, 1, 1, time.time_ns() // 1_000_000)


def _batch(src: str, readings: list[dict[str, object]]) -> bytes:
    return json.dumps({"v": 1, "src": src, "seq": 4, "readings": readings}).encode()


def test_accepted_telemetry_counts_readings_and_storage() -> None:
    now = time.time_ns() // 1_000_000
    msg = _msg(_batch("press-gw", [{"tag": "t", "ts": now - i, "v": 1.0} for i in range(3)]))
    verdict = judge(msg, OWNERS)
    assert (verdict.accepted, verdict.text) == (True, "3 readings, src press-gw, seq 4")
    assert (verdict.reason, verdict.field) == (None, None)
    judged = Judged(verdict, msg.received_at, stored=3)
    assert judged.line() == f"{TOPIC}: accepted — 3 readings, src press-gw, seq 4; stored"
    assert Judged(verdict, 0, stored=1).line().endswith("; 1 of 3 stored so far")
    assert Judged(verdict, 0, stored=0).line().endswith("; not stored yet (is the hub running?)")
    doc = judged.doc()
    assert doc == {
        "type": "verdict",
        "topic": TOPIC,
        "kind": "telemetry",
        "received_at": msg.received_at,
        "accepted": True,
        "text": "3 readings, src press-gw, seq 4",
        "reason": None,
        "field": None,
        "readings": 3,
        "src": "press-gw",
        "seq": 4,
        "stored": 3,
    }


def test_refusals_name_their_reason_and_field() -> None:
    now = time.time_ns() // 1_000_000
    bad_q = judge(_msg(_batch("press-gw", [{"tag": "t", "ts": now, "v": 1, "q": "meh"}])), OWNERS)
    assert (bad_q.accepted, bad_q.reason, bad_q.field) == (False, "bad_quality", "readings[0].q")
    assert bad_q.text.startswith("refused (bad_quality): readings[0].q: ")

    broken = judge(_msg(b"{not json"), OWNERS)
    assert (broken.accepted, broken.reason, broken.field) == (False, "bad_json", "payload")

    # Another identity's src on this machine: set aside by the hub, the field is src.
    forged = judge(_msg(_batch("line-pc", [{"tag": "t", "ts": now, "v": 1.0}])), OWNERS)
    assert (forged.accepted, forged.reason, forged.field) == (False, "not_authorized", "src")
    doc = Judged(forged, 0).doc()
    assert (doc["accepted"], doc["readings"], doc["stored"]) == (False, None, None)


def test_a_partly_refused_batch_is_accepted_with_the_refused_readings_field() -> None:
    now = time.time_ns() // 1_000_000
    readings: list[dict[str, object]] = [
        {"tag": "t", "ts": now, "v": 1.0},
        {"tag": "t", "ts": now - 90 * 86_400_000, "v": 2.0},  # outside the ts window
    ]
    verdict = judge(_msg(_batch("press-gw", readings)), OWNERS)
    assert verdict.accepted
    assert verdict.text.startswith("1 readings, src press-gw, seq 4; set aside: 1 of 2 readings")
    assert (verdict.reason, verdict.field) == ("ts_out_of_range", "readings[1].ts")


def test_status_and_an_empty_retained_clear() -> None:
    status = wire.encode_status("online", 1_800_000_000_000)
    verdict = judge(_msg(status, "ms/v1/s1/l1/press-01/status"), OWNERS)
    assert (verdict.accepted, verdict.text) == (True, "MachineStatus accepted")
    assert Judged(verdict, 0).doc()["kind"] == "status"
    cleared = judge(_msg(b"", "ms/v1/s1/l1/press-01/status"), OWNERS)
    assert cleared.text == "empty (clears a retained message)"


def test_field_of_and_topics() -> None:
    assert field_of("readings[12].v: not a number") == "readings[12].v"
    assert field_of("src: 'x' may not publish") == "src"
    assert field_of("1 of 2 readings refused") is None
    device = Identity("gw", "device", "s1", "l1", ("m1", "m2"))
    assert topics_of(device)[:2] == ["ms/v1/s1/l1/m1/telemetry", "ms/v1/s1/l1/m1/status"]
    assert len(topics_of(device)) == 8
    assert topics_of(Identity("pc", "agent", "s1", "l1"))[0] == "ms/v1/s1/l1/+/telemetry"
