"""Machine tag metadata (`…/meta`): encode, parse, refuse."""

from __future__ import annotations

import json

import pytest

import wire

NOW = 1_763_900_000_000
META_TOPIC = "ms/v1/plant1/line3/cnc7/meta"


def test_meta_round_trips() -> None:
    payload = wire.encode_meta(
        NOW,
        {
            "spindle_temp": wire.TagMeta(unit="°C", description="Spindle bearing temperature"),
            "part_count": wire.TagMeta(),
        },
    )
    assert json.loads(payload) == {
        "v": 1,
        "ts": NOW,
        "tags": {
            "spindle_temp": {"unit": "°C", "description": "Spindle bearing temperature"},
            "part_count": {},
        },
    }
    assert payload.startswith(b'{"v":1,')
    meta = wire.parse_meta(META_TOPIC, payload)
    assert (meta.site, meta.line, meta.machine, meta.ts) == ("plant1", "line3", "cnc7", NOW)
    assert meta.tags["spindle_temp"].unit == "°C"
    assert meta.tags["part_count"] == wire.TagMeta(unit=None, description=None)


def test_meta_without_tags_is_valid() -> None:
    # What an agent publishes for a device whose profile has no units: it clears older units.
    assert wire.parse_meta(META_TOPIC, wire.encode_meta(NOW, {})).tags == {}


def test_meta_ts_is_not_held_to_the_telemetry_window() -> None:
    old = NOW - 400 * 86_400_000
    assert wire.parse_meta(META_TOPIC, wire.encode_meta(old, {})).ts == old


def test_unit_limit_is_in_characters() -> None:
    unit = "°" * wire.MAX_UNIT_CHARS  # 64 bytes of UTF-8, 32 characters: allowed
    meta = wire.parse_meta(META_TOPIC, wire.encode_meta(NOW, {"t": wire.TagMeta(unit=unit)}))
    assert meta.tags["t"].unit == unit


def _body(tags: object) -> bytes:
    return json.dumps({"v": 1, "ts": NOW, "tags": tags}, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "field"),
    [
        (META_TOPIC, _body({"a b": {"unit": "V"}}), "bad_field", "tags.a b"),
        (META_TOPIC, _body({"t": {"unit": "x" * 33}}), "string_too_long", "tags.t.unit"),
        (META_TOPIC, _body({"t": {"unit": "°" * 33}}), "string_too_long", "tags.t.unit"),
        (
            META_TOPIC,
            _body({"t": {"description": "d" * 257}}),
            "string_too_long",
            "tags.t.description",
        ),
        (META_TOPIC, _body({"t": {"unit": ""}}), "bad_field", "tags.t.unit"),
        (META_TOPIC, _body({"t": {"unit": "V\u0000"}}), "nul_in_string", "tags.t.unit"),
        (META_TOPIC, _body({"t": {"unit": 5}}), "bad_field", "tags.t.unit"),
        (META_TOPIC, _body({"t": {"colour": "red"}}), "bad_field", "tags.t.colour"),
        (META_TOPIC, _body({"t": "°C"}), "bad_field", "tags.t"),
        (META_TOPIC, _body(["t"]), "bad_field", "tags"),
        (META_TOPIC, _body({f"t{i}": {} for i in range(10_001)}), "bad_field", "tags"),
        (META_TOPIC, b'{"v":1,"ts":1}', "bad_field", "tags"),
        (META_TOPIC, b'{"v":1,"tags":{}}', "bad_field", "ts"),
        (META_TOPIC, b'{"v":1,"ts":-1,"tags":{}}', "ts_out_of_range", "ts"),
        (META_TOPIC, b'{"v":2,"ts":1,"tags":{}}', "bad_version", "v"),
        (META_TOPIC, b'{"v":1,"ts":1,"tags":{},"units":{}}', "bad_field", "units"),
        (META_TOPIC, b"\xff", "bad_utf8", "payload"),
        (META_TOPIC, b"units", "bad_json", "payload"),
        (META_TOPIC, b"x" * (wire.MAX_PAYLOAD_BYTES + 1), "too_large", "payload"),
        ("ms/v1/plant1/line3/cnc7/status", b'{"v":1,"ts":1,"tags":{}}', "bad_topic", "topic"),
        ("ms/v1/agents/line3/meta", b'{"v":1,"ts":1,"tags":{}}', "bad_topic", "topic"),
    ],
)
def test_bad_meta_is_refused(topic: str, payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_meta(topic, payload)
    assert (caught.value.reason, caught.value.field) == (reason, field), str(caught.value)


def test_encode_refuses_what_the_hub_would_refuse() -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_meta(NOW, {"bad tag": wire.TagMeta(unit="V")})
    assert caught.value.reason == "bad_field"
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_meta(-1, {})
    assert caught.value.reason == "ts_out_of_range"
