"""Machine status, agent status and receipts: encode, parse, refuse."""

from __future__ import annotations

import hashlib
import json

import pytest

import wire

NOW = 1_763_900_000_000
STATUS_TOPIC = "ms/v1/plant1/line3/cnc7/status"
AGENT_TOPIC = "ms/v1/agents/line3-pc/status"
RECEIPT_TOPIC = "ms/v1/receipts/line3-pc"


def test_machine_status_round_trips() -> None:
    payload = wire.encode_status("faulted", NOW, "spindle overload")
    assert json.loads(payload) == {
        "v": 1,
        "state": "faulted",
        "ts": NOW,
        "detail": "spindle overload",
    }
    assert payload.startswith(b'{"v":1,')
    status = wire.parse_status(STATUS_TOPIC, payload)
    assert status == wire.Status(
        site="plant1",
        line="line3",
        machine="cnc7",
        state="faulted",
        ts=NOW,
        detail="spindle overload",
    )


def test_last_will_status_is_minimal() -> None:
    assert wire.encode_status("offline", NOW) == b'{"v":1,"state":"offline","ts":%d}' % NOW
    assert wire.parse_status(STATUS_TOPIC, wire.encode_status("offline", NOW)).detail is None


def test_status_ts_is_not_held_to_the_telemetry_window() -> None:
    # A last will is written at connect time and may be published months later.
    old = NOW - 400 * 86_400_000
    assert wire.parse_status(STATUS_TOPIC, wire.encode_status("offline", old)).ts == old


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "field"),
    [
        (STATUS_TOPIC, b'{"v":1,"state":"sleeping","ts":1}', "bad_field", "state"),
        (STATUS_TOPIC, b'{"v":1,"state":"online"}', "bad_field", "ts"),
        (STATUS_TOPIC, b'{"v":1,"state":"online","ts":1.5}', "bad_field", "ts"),
        (STATUS_TOPIC, b'{"v":2,"state":"online","ts":1}', "bad_version", "v"),
        (STATUS_TOPIC, b'{"state":"online","ts":1}', "bad_version", "v"),
        (
            STATUS_TOPIC,
            b'{"v":1,"state":"online","ts":1,"detail":"%s"}' % (b"x" * 1025),
            "string_too_long",
            "detail",
        ),
        (STATUS_TOPIC, b'{"v":1,"state":"online","ts":1,"extra":1}', "bad_field", "extra"),
        (STATUS_TOPIC, b"offline", "bad_json", "payload"),
        (
            "ms/v1/plant1/line3/cnc7/telemetry",
            b'{"v":1,"state":"online","ts":1}',
            "bad_topic",
            "topic",
        ),
        (AGENT_TOPIC, b'{"v":1,"state":"online","ts":1}', "bad_topic", "topic"),
    ],
)
def test_bad_machine_status_is_refused(topic: str, payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_status(topic, payload)
    assert (caught.value.reason, caught.value.field) == (reason, field), str(caught.value)


def test_agent_status_round_trips() -> None:
    payload = wire.encode_agent_status(
        "online",
        NOW,
        version="0.1.0",
        buffer_depth=1200,
        buffer_age_ms=4_000,
        dropped=0,
        poll_errors={"cnc7": 3, "press2": 0},
        publish_rate=812.5,
    )
    status = wire.parse_agent_status(AGENT_TOPIC, payload)
    assert status == wire.AgentStatus(
        agent_id="line3-pc",
        state="online",
        ts=NOW,
        version="0.1.0",
        buffer_depth=1200,
        buffer_age_ms=4_000,
        dropped=0,
        poll_errors={"cnc7": 3, "press2": 0},
        publish_rate=812.5,
    )


def test_agent_status_carries_backlog_and_per_device_health() -> None:
    minute = NOW - NOW % 60_000
    devices = {
        "press-01": wire.DeviceStatus(
            online=True,
            last_good_ts=NOW - 50,
            errors=2,
            dropped=7,
            produced=((minute - 60_000, 600), (minute, 412)),
        ),
        "oven-01": wire.DeviceStatus(online=False, errors=9),
    }
    payload = wire.encode_agent_status(
        "online",
        NOW,
        site="plant-a",
        line="line-3",
        buffer_bytes=65_536,
        backlog=30_000,
        backlog_age_ms=90_000,
        drain_rate=1_500.0,
        eta_s=20.0,
        devices=devices,
    )
    status = wire.parse_agent_status(AGENT_TOPIC, payload)
    assert (status.site, status.line) == ("plant-a", "line-3")
    assert (status.buffer_bytes, status.backlog, status.backlog_age_ms) == (65_536, 30_000, 90_000)
    assert (status.drain_rate, status.eta_s) == (1_500.0, 20.0)
    assert dict(status.devices) == devices
    assert status.devices["press-01"].produced[1] == (minute, 412)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"v":1,"state":"online","ts":1,"devices":{"a/b":{}}}', "devices.a/b"),
        (b'{"v":1,"state":"online","ts":1,"site":"receipts"}', "site"),
        (b'{"v":1,"state":"online","ts":1,"devices":{"m":{"online":1}}}', "devices.m.online"),
        (
            b'{"v":1,"state":"online","ts":1,"devices":{"m":{"produced":[[60000,-1]]}}}',
            "devices.m.produced[0][1]",
        ),
        (b'{"v":1,"state":"online","ts":1,"devices":{"m":{"colour":"red"}}}', "devices.m.colour"),
    ],
)
def test_bad_device_health_is_refused(payload: bytes, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_agent_status(AGENT_TOPIC, payload)
    assert (caught.value.reason, caught.value.field) == ("bad_field", field), str(caught.value)


def test_agent_last_will_needs_only_state_and_ts() -> None:
    payload = wire.encode_agent_status("offline", NOW)
    assert payload == b'{"v":1,"state":"offline","ts":%d}' % NOW
    status = wire.parse_agent_status(AGENT_TOPIC, b'{"v":1,"state":"offline","ts":%d}' % NOW)
    assert (status.state, status.buffer_depth, dict(status.poll_errors)) == ("offline", None, {})


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b'{"v":1,"state":"online","ts":1,"publish_rate":NaN}', "not_finite", "publish_rate"),
        (b'{"v":1,"state":"online","ts":1,"publish_rate":-1}', "bad_field", "publish_rate"),
        (b'{"v":1,"state":"online","ts":1,"buffer_depth":-5}', "bad_field", "buffer_depth"),
        (
            b'{"v":1,"state":"online","ts":1,"poll_errors":{"a/b":1}}',
            "bad_field",
            "poll_errors.a/b",
        ),
        (b'{"v":1,"state":"online","ts":1,"poll_errors":{"m":1.5}}', "bad_field", "poll_errors.m"),
        (b'{"v":1,"state":"online","ts":1,"version":7}', "bad_field", "version"),
    ],
)
def test_bad_agent_status_is_refused(payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_agent_status(AGENT_TOPIC, payload)
    assert (caught.value.reason, caught.value.field) == (reason, field), str(caught.value)


def test_encoders_refuse_what_parsers_refuse() -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_status("sleeping", NOW)  # type: ignore[arg-type]
    assert caught.value.field == "state"
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_agent_status("online", NOW, publish_rate=float("nan"))
    assert caught.value.reason == "not_finite"


def test_coalesce_seqs_examples() -> None:
    assert wire.coalesce_seqs([]) == []
    assert wire.coalesce_seqs([5]) == [(5, 5)]
    assert wire.coalesce_seqs([7, 3, 1, 2, 7]) == [(1, 3), (7, 7)]
    assert wire.coalesce_seqs(range(10, 20)) == [(10, 19)]


def test_receipt_round_trips() -> None:
    payload = wire.encode_receipt([(1, 3), (7, 7)])
    assert payload == b'{"v":1,"seqs":[[1,3],[7,7]]}'
    receipt = wire.parse_receipt(RECEIPT_TOPIC, payload)
    assert receipt == wire.Receipt(src="line3-pc", seqs=[(1, 3), (7, 7)])
    assert 2 in receipt
    assert 5 not in receipt


def test_receipt_names_each_batch_by_its_digest() -> None:
    batch = wire.encode_telemetry("line3-pc", 7, [wire.Reading(tag="t", ts=1, v=1.0)])
    digest = wire.batch_digest(batch)
    assert digest == hashlib.sha256(batch).hexdigest()[:32]
    payload = wire.encode_receipt([(7, 7)], [(7, digest)])
    assert payload == b'{"v":1,"seqs":[[7,7]],"sha256":[[7,"' + digest.encode() + b'"]]}'
    receipt = wire.parse_receipt(RECEIPT_TOPIC, payload)
    assert receipt.sha256 == ((7, digest),)
    # One changed byte, another digest: a forged batch under the same seq is told apart.
    assert wire.batch_digest(batch.replace(b"1.0", b"2.0")) != digest


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "field"),
    [
        (
            RECEIPT_TOPIC,
            b'{"v":1,"seqs":[[1,1]],"sha256":[[1,"ABC"]]}',
            "bad_field",
            "sha256[0][1]",
        ),
        (
            RECEIPT_TOPIC,
            b'{"v":1,"seqs":[[1,1]],"sha256":[["1","' + b"a" * 32 + b'"]]}',
            "bad_field",
            "sha256[0][0]",
        ),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[[9,3]]}', "bad_range", "seqs"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[]}', "bad_field", "seqs"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[[1]]}', "bad_field", "seqs[0][1]"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[[1,2,3]]}', "bad_field", "seqs[0]"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[[-1,2]]}', "bad_field", "seqs[0][0]"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[[1,2.5]]}', "bad_field", "seqs[0][1]"),
        (RECEIPT_TOPIC, b'{"v":1,"seqs":[1,2]}', "bad_field", "seqs[0]"),
        (RECEIPT_TOPIC, b'{"seqs":[[1,2]]}', "bad_version", "v"),
        ("ms/v1/receipts/a/b", b'{"v":1,"seqs":[[1,2]]}', "bad_topic", "topic"),
        (AGENT_TOPIC, b'{"v":1,"seqs":[[1,2]]}', "bad_topic", "topic"),
    ],
)
def test_bad_receipt_is_refused(topic: str, payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_receipt(topic, payload)
    assert (caught.value.reason, caught.value.field) == (reason, field), str(caught.value)


def test_encode_receipt_refuses_a_reversed_range() -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_receipt([(1, 2), (9, 3)])
    assert caught.value.reason == "bad_range"
    assert str(caught.value) == "seqs: range 1 is [9, 3]: first must not exceed last"
