"""parse_telemetry / encode_telemetry: hand-written malformed messages, each with its reason."""

from __future__ import annotations

import json
import pickle
from typing import Any, NamedTuple

import pytest

import wire

NOW = 1_763_900_000_000
TOPIC = "ms/v1/plant1/line3/cnc7/telemetry"
DAY = 86_400_000


def body(**changes: Any) -> dict[str, Any]:
    """A valid batch body with top-level fields replaced (a value of ... deletes the field)."""
    base: dict[str, Any] = {
        "v": 1,
        "src": "line3-pc",
        "seq": 1842,
        "readings": [
            {"tag": "spindle_temp", "ts": NOW - 1000, "v": 85.4, "q": "good"},
            {"tag": "door_open", "ts": NOW, "v": False, "q": "uncertain"},
        ],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


def reading(**changes: Any) -> bytes:
    """A valid body whose second reading has fields replaced (... deletes the field)."""
    item: dict[str, Any] = {"tag": "door_open", "ts": NOW, "v": False, "q": "good"}
    item.update(changes)
    item = {key: value for key, value in item.items() if value is not ...}
    return dump(body(readings=[body()["readings"][0], item]))


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def raw_reading_v(literal: str) -> bytes:
    """A body whose second reading's value is the JSON text `literal`, verbatim."""
    return reading(v="@@").replace(b'"@@"', literal.encode())


VALID = dump(body())

# (case id, topic, payload, reason, field named in the message)
MALFORMED: list[tuple[str, str, Any, wire.Reason, str]] = [
    # topics
    ("status-topic", "ms/v1/plant1/line3/cnc7/status", VALID, "bad_topic", "topic"),
    ("version-2-topic", "ms/v2/plant1/line3/cnc7/telemetry", VALID, "bad_topic", "topic"),
    ("reserved-site-agents", "ms/v1/agents/line3/cnc7/telemetry", VALID, "bad_topic", "site"),
    ("reserved-site-receipts", "ms/v1/receipts/l/m/telemetry", VALID, "bad_topic", "site"),
    ("wildcard-segment", "ms/v1/plant1/line3/+/telemetry", VALID, "bad_topic", "machine"),
    ("empty-segment", "ms/v1/plant1//cnc7/telemetry", VALID, "bad_topic", "line"),
    ("segment-65-chars", f"ms/v1/{'s' * 65}/line3/cnc7/telemetry", VALID, "bad_topic", "site"),
    ("trailing-slash", TOPIC + "/", VALID, "bad_topic", "topic"),
    ("leading-slash", "/" + TOPIC, VALID, "bad_topic", "topic"),
    ("non-ascii-segment", "ms/v1/plant1/line3/cnc\u00e4/telemetry", VALID, "bad_topic", "machine"),
    ("newline-in-segment", "ms/v1/plant1/line3/cnc7\n/telemetry", VALID, "bad_topic", "machine"),
    ("too-short-topic", "ms/v1", VALID, "bad_topic", "topic"),
    # bytes and JSON
    ("over-1-MiB", TOPIC, VALID + b" " * (wire.MAX_PAYLOAD_BYTES), "too_large", "payload"),
    ("not-utf8", TOPIC, b"\xff\xfe{}", "bad_utf8", "payload"),
    (
        "bad-utf8-in-string",
        TOPIC,
        reading(v="@@").replace(b"@@", b"\xc3\x28"),
        "bad_utf8",
        "payload",
    ),
    ("empty", TOPIC, b"", "bad_json", "payload"),
    ("truncated", TOPIC, VALID[:-1], "bad_json", "payload"),
    ("trailing-garbage", TOPIC, VALID + b"x", "bad_json", "payload"),
    ("utf8-bom", TOPIC, b"\xef\xbb\xbf" + VALID, "bad_json", "payload"),
    ("deep-nesting", TOPIC, b"[" * 100_000 + b"]" * 100_000, "bad_json", "payload"),
    (
        "deep-nesting-in-value",
        TOPIC,
        raw_reading_v("[" * 50_000 + "]" * 50_000),
        "bad_json",
        "payload",
    ),
    ("single-quotes", TOPIC, VALID.replace(b'"', b"'"), "bad_json", "payload"),
    ("lone-surrogate-escape", TOPIC, raw_reading_v('"\\ud800"'), "bad_json", "payload"),
    ("not-bytes", TOPIC, VALID.decode(), "bad_json", "payload"),
    # shape and version
    ("top-level-array", TOPIC, b"[1,2]", "bad_field", "payload"),
    ("top-level-null", TOPIC, b"null", "bad_field", "payload"),
    ("version-2", TOPIC, dump(body(v=2)), "bad_version", "v"),
    ("version-true", TOPIC, dump(body(v=True)), "bad_version", "v"),
    ("version-float", TOPIC, dump(body(v=1.0)), "bad_version", "v"),
    ("version-string", TOPIC, dump(body(v="1")), "bad_version", "v"),
    ("version-missing", TOPIC, dump(body(v=...)), "bad_version", "v"),
    ("unknown-top-level-field", TOPIC, dump(body(site="plant1")), "bad_field", "site"),
    ("src-missing", TOPIC, dump(body(src=...)), "bad_field", "src"),
    ("src-with-slash", TOPIC, dump(body(src="line3/pc")), "bad_field", "src"),
    ("seq-negative", TOPIC, dump(body(seq=-1)), "bad_field", "seq"),
    ("seq-float", TOPIC, dump(body(seq=1.5)), "bad_field", "seq"),
    ("seq-string", TOPIC, dump(body(seq="1842")), "bad_field", "seq"),
    ("seq-bool", TOPIC, dump(body(seq=True)), "bad_field", "seq"),
    ("seq-over-bigint", TOPIC, dump(body(seq=2**63)), "bad_field", "seq"),
    ("readings-empty", TOPIC, dump(body(readings=[])), "bad_field", "readings"),
    ("readings-object", TOPIC, dump(body(readings={})), "bad_field", "readings"),
    ("reading-not-object", TOPIC, dump(body(readings=[1])), "bad_field", "readings[0]"),
    (
        "too-many-readings",
        TOPIC,
        dump(body(readings=[{"tag": "t", "ts": NOW, "v": 1}] * (wire.MAX_READINGS + 1))),
        "too_many_readings",
        "readings",
    ),
    # readings
    ("reading-ts-missing", TOPIC, reading(ts=...), "bad_field", "readings[1].ts"),
    ("reading-v-missing", TOPIC, reading(v=...), "bad_field", "readings[1].v"),
    ("reading-unknown-field", TOPIC, reading(unit="degC"), "bad_field", "readings[1].unit"),
    ("tag-empty", TOPIC, reading(tag=""), "bad_field", "readings[1].tag"),
    ("tag-with-space", TOPIC, reading(tag="door open"), "bad_field", "readings[1].tag"),
    ("tag-129-chars", TOPIC, reading(tag="t" * 129), "bad_field", "readings[1].tag"),
    ("value-null", TOPIC, reading(v=None), "bad_field", "readings[1].v"),
    ("value-array", TOPIC, reading(v=[1, 2]), "bad_field", "readings[1].v"),
    ("value-object", TOPIC, reading(v={"x": 1}), "bad_field", "readings[1].v"),
    ("value-NaN", TOPIC, raw_reading_v("NaN"), "not_finite", "readings[1].v"),
    ("value-Infinity", TOPIC, raw_reading_v("Infinity"), "not_finite", "readings[1].v"),
    ("value-minus-Infinity", TOPIC, raw_reading_v("-Infinity"), "not_finite", "readings[1].v"),
    ("value-overflows-double", TOPIC, raw_reading_v("1e400"), "not_finite", "readings[1].v"),
    # Rollup sums must not overflow: see wire.MAX_ABS_NUMBER.
    ("value-beyond-1e300", TOPIC, raw_reading_v("1.7e308"), "not_finite", "readings[1].v"),
    ("value-beyond-minus-1e300", TOPIC, raw_reading_v("-1e301"), "not_finite", "readings[1].v"),
    ("string-with-nul", TOPIC, reading(v="O1234\u0000\u0000"), "nul_in_string", "readings[1].v"),
    ("string-1025-bytes", TOPIC, reading(v="x" * 1025), "string_too_long", "readings[1].v"),
    (
        "string-513-two-byte-chars",
        TOPIC,
        reading(v="\u00e9" * 513),
        "string_too_long",
        "readings[1].v",
    ),
    ("quality-capitalised", TOPIC, reading(q="Good"), "bad_quality", "readings[1].q"),
    ("quality-null", TOPIC, reading(q=None), "bad_quality", "readings[1].q"),
    ("quality-modbus-error", TOPIC, reading(q="error"), "bad_quality", "readings[1].q"),
    ("ts-31-days-old", TOPIC, reading(ts=NOW - 30 * DAY - 1), "ts_out_of_range", "readings[1].ts"),
    (
        "ts-6-minutes-ahead",
        TOPIC,
        reading(ts=NOW + 5 * 60_000 + 1),
        "ts_out_of_range",
        "readings[1].ts",
    ),
    ("ts-seconds-not-ms", TOPIC, reading(ts=NOW // 1000), "ts_out_of_range", "readings[1].ts"),
    ("ts-negative", TOPIC, reading(ts=-1), "ts_out_of_range", "readings[1].ts"),
    ("ts-huge-integer", TOPIC, reading(ts=10**30), "ts_out_of_range", "readings[1].ts"),
    ("ts-float", TOPIC, reading(ts=float(NOW)), "bad_field", "readings[1].ts"),
    ("ts-bool", TOPIC, reading(ts=True), "bad_field", "readings[1].ts"),
    ("ts-string", TOPIC, reading(ts=str(NOW)), "bad_field", "readings[1].ts"),
    ("ts-iso-8601", TOPIC, reading(ts="2025-11-23T12:00:00Z"), "bad_field", "readings[1].ts"),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_message_is_refused_with_its_reason(
    topic: str, payload: bytes, reason: str, field: str
) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_telemetry(topic, payload, NOW)
    error = caught.value
    assert error.reason == reason, str(error)
    assert str(error).startswith(f"{field}: "), str(error)
    assert len(str(error)) < 300  # a hostile payload never becomes a huge log line


def test_the_table_covers_every_telemetry_reason() -> None:
    covered = {case[3] for case in MALFORMED}
    assert len(MALFORMED) >= 30
    # bad_range belongs to receipts; the last three to Sparkplug (tests/wire/test_sparkplug.py)
    sparkplug = {"bad_protobuf", "unsupported_value", "unknown_alias"}
    hub_only = {"bad_range", "not_authorized"}  # receipts; the hub's owner check (hub/ingest)
    assert covered == set(wire.REASONS) - hub_only - sparkplug


def test_valid_batch_parses_with_identity_from_the_topic() -> None:
    batch = wire.parse_telemetry(TOPIC, VALID, NOW)
    assert (batch.site, batch.line, batch.machine) == ("plant1", "line3", "cnc7")
    assert (batch.src, batch.seq) == ("line3-pc", 1842)
    assert batch.readings == (
        wire.Reading(tag="spindle_temp", ts=NOW - 1000, v=85.4, q="good"),
        wire.Reading(tag="door_open", ts=NOW, v=False, q="uncertain"),
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(reading(ts=NOW - 30 * DAY), NOW - 30 * DAY, id="ts-exactly-30-days-old"),
        pytest.param(reading(ts=NOW + 5 * 60_000), NOW + 5 * 60_000, id="ts-exactly-5-min-ahead"),
        pytest.param(reading(v="x" * 1024), "x" * 1024, id="string-exactly-1024-bytes"),
        pytest.param(reading(v="\u00e9" * 512), "\u00e9" * 512, id="string-512-two-byte-chars"),
        pytest.param(reading(v=""), "", id="empty-string"),
        pytest.param(reading(v=True), True, id="bool-stays-bool"),
        pytest.param(reading(v=1), 1, id="int-stays-int"),
        pytest.param(reading(v=1.0), 1.0, id="float-stays-float"),
        pytest.param(reading(v=2**63 - 1), 2**63 - 1, id="int64-max"),
        pytest.param(reading(v=1e300), 1e300, id="largest-number"),
        pytest.param(reading(v=-1e300), -1e300, id="smallest-number"),
        pytest.param(reading(tag="inlet.temp_2-a"), "inlet.temp_2-a", id="dotted-tag"),
        pytest.param(reading(tag="t" * 128), "t" * 128, id="tag-128-chars"),
    ],
)
def test_edge_of_every_limit_is_accepted(payload: bytes, expected: object) -> None:
    second = wire.parse_telemetry(TOPIC, payload, NOW).readings[1]
    assert expected in (second.ts, second.v, second.tag)
    if not isinstance(expected, str):
        assert any(type(x) is type(expected) for x in (second.ts, second.v))


def test_quality_defaults_to_good_and_whitespace_is_fine() -> None:
    batch = wire.parse_telemetry(TOPIC, b"\n  " + reading(q=...) + b"\r\n", NOW)
    assert batch.readings[1].q == "good"


def test_integer_wider_than_64_bits_arrives_as_a_float() -> None:
    # Storage keeps numbers as double precision; refusing would lose a reading for nothing.
    batch = wire.parse_telemetry(TOPIC, raw_reading_v("1" + "0" * 25), NOW)
    assert batch.readings[1].v == 1e25
    assert isinstance(batch.readings[1].v, float)


def test_exactly_max_readings_and_a_full_mebibyte_are_accepted() -> None:
    items = [{"tag": "t", "ts": NOW, "v": index} for index in range(wire.MAX_READINGS)]
    payload = dump(body(readings=items))
    payload += b" " * (wire.MAX_PAYLOAD_BYTES - len(payload))
    assert len(payload) == wire.MAX_PAYLOAD_BYTES
    assert len(wire.parse_telemetry(TOPIC, payload, NOW).readings) == wire.MAX_READINGS


def test_too_many_readings_wins_over_a_bad_reading_inside() -> None:
    items = [{"tag": "t", "ts": NOW, "v": 1}] * (wire.MAX_READINGS + 1)
    items[5] = {"tag": "t", "ts": 1.5, "v": 1}
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_telemetry(TOPIC, dump(body(readings=items)), NOW)
    assert caught.value.reason == "too_many_readings"


def test_message_names_the_reading_index() -> None:
    items = [{"tag": "t", "ts": NOW, "v": 1}] * 5
    items[3] = {"tag": "t", "ts": NOW - 40 * DAY, "v": 1}
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_telemetry(TOPIC, dump(body(readings=items)), NOW)
    assert caught.value.field == "readings[3].ts"
    assert str(caught.value).startswith("readings[3].ts: ")
    assert "40.0 days before" in str(caught.value)


def test_payload_error_is_a_value_error_and_survives_pickling() -> None:
    error = wire.PayloadError("bad_field", "seq: is required", "seq")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy), copy.field) == ("bad_field", "seq: is required", "seq")


class BufferedReading(NamedTuple):
    """The agent buffer's shape: encode_telemetry takes any object with these attributes."""

    tag: str
    ts: int
    v: float | int | bool | str
    q: str = "good"


def test_encode_is_compact_json_that_parses_back() -> None:
    readings = [BufferedReading("spindle_temp", NOW, 85.4), BufferedReading("mode", NOW, "auto")]
    payload = wire.encode_telemetry("line3-pc", 7, readings)
    assert payload == (
        b'{"v":1,"src":"line3-pc","seq":7,"readings":['
        b'{"tag":"spindle_temp","ts":1763900000000,"v":85.4,"q":"good"},'
        b'{"tag":"mode","ts":1763900000000,"v":"auto","q":"good"}]}'
    )
    batch = wire.parse_telemetry(TOPIC, payload, NOW)
    assert [(r.tag, r.ts, r.v, r.q) for r in batch.readings] == [tuple(r) for r in readings]


def test_encode_writes_unicode_as_utf8() -> None:
    payload = wire.encode_telemetry("pc", 1, [BufferedReading("t", NOW, "Ölstand ok")])
    assert "Ölstand ok".encode() in payload


@pytest.mark.parametrize(
    ("src", "seq", "readings", "reason"),
    [
        pytest.param("pc", 1, [BufferedReading("t", NOW, float("nan"))], "not_finite", id="nan"),
        pytest.param("pc", 1, [BufferedReading("t", NOW, float("inf"))], "not_finite", id="inf"),
        pytest.param("pc", 1, [BufferedReading("t", NOW, "\ud800")], "bad_utf8", id="surrogate"),
        pytest.param("pc", 1, [BufferedReading("a b", NOW, 1)], "bad_field", id="tag"),
        pytest.param("pc", 1, [BufferedReading("t", NOW, 1, "ok")], "bad_quality", id="q"),
        pytest.param(
            "pc", 1, [BufferedReading("t", NOW, "x" * 1025)], "string_too_long", id="long-string"
        ),
        pytest.param("pc", 1, [BufferedReading("t", 1.5, 1)], "bad_field", id="float-ts"),  # type: ignore[arg-type]
        pytest.param("pc", 1, [BufferedReading("t", NOW, b"x")], "bad_field", id="bytes-value"),  # type: ignore[arg-type]
        pytest.param("a/b", 1, [BufferedReading("t", NOW, 1)], "bad_field", id="src"),
        pytest.param("pc", -1, [BufferedReading("t", NOW, 1)], "bad_field", id="seq"),
        pytest.param("pc", 1, [], "bad_field", id="empty"),
        pytest.param(
            "pc", 1, [BufferedReading("t", NOW, 1)] * 10_001, "too_many_readings", id="too-many"
        ),
    ],
)
def test_encode_refuses_what_the_hub_would_refuse(
    src: str, seq: int, readings: list[BufferedReading], reason: str
) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_telemetry(src, seq, readings)
    assert caught.value.reason == reason


def test_partial_parse_keeps_good_readings_and_refuses_each_bad_one_alone() -> None:
    good = {"tag": "spindle_temp", "ts": NOW - 1000, "v": 85.4, "q": "good"}
    readings = [
        good,
        {"tag": "program", "ts": NOW, "v": "O1234\u0000\u0000"},  # PLC C-string padding
        {"tag": "flow", "ts": NOW, "v": "@@"},  # becomes 1.7e308 below
        {"tag": "door_open", "ts": NOW, "v": True},
        {"tag": "old", "ts": NOW - wire.MAX_PAST_MS - 1, "v": 1},
        {"tag": "bad q", "ts": NOW, "v": 1},
    ]
    payload = dump(body(readings=readings)).replace(b'"@@"', b"1.7e308")
    with pytest.raises(wire.PayloadError):
        wire.parse_telemetry(TOPIC, payload, NOW)  # the strict parse refuses the whole batch
    batch, refused = wire.parse_telemetry_partial(TOPIC, payload, NOW)
    assert [r.tag for r in batch.readings] == ["spindle_temp", "door_open"]
    assert [(r.index, r.error.reason, r.error.field) for r in refused] == [
        (1, "nul_in_string", "readings[1].v"),
        (2, "not_finite", "readings[2].v"),
        (4, "ts_out_of_range", "readings[4].ts"),
        (5, "bad_field", "readings[5].tag"),
    ]
    assert refused[0].reading == readings[1]
    assert str(refused[0].error).startswith("readings[1].v: must not hold U+0000")
    # A clean batch goes the fast way and refuses nothing.
    batch, refused = wire.parse_telemetry_partial(TOPIC, VALID, NOW)
    assert refused == ()
    assert batch == wire.parse_telemetry(TOPIC, VALID, NOW)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (dump(body(seq=-1, readings=[{"tag": "t", "ts": NOW, "v": float("nan")}])), "bad_field"),
        (reading(v="x\u0000").replace(b'"spindle_temp"', b'"bad tag"'), "bad_field"),
        (dump(body(readings=[{"tag": "t", "ts": NOW, "v": "\u0000"}])), "nul_in_string"),
        (b'{"v":1,"src":"a","seq":1,"readings":[{"tag":"t","ts":1,"v":1}],"x":1}', "bad_field"),
    ],
    ids=["bad-envelope", "no-reading-left", "only-reading-bad", "unknown-top-field"],
)
def test_partial_parse_refuses_the_whole_message_when_nothing_is_left_or_the_envelope_is_bad(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_telemetry_partial(TOPIC, payload, NOW)
    assert caught.value.reason == reason
