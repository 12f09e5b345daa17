"""Pure core of the bridges: outbox bodies, record values, batching, cursors, latest values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wire
from hub.bridge.kafka.outbox import outbox_values
from hub.bridge.kafka.records import (
    KIND_DEAD_LETTER,
    OutboxRow,
    decode_cursor,
    encode_cursor,
    encode_readings,
    record_values,
    split_batch,
)
from hub.bridge.kafka.relay import shares
from hub.bridge.kafka.topics import topic_specs
from hub.bridge.redis.model import (
    Latest,
    Update,
    coalesce,
    decode_latest,
    decode_update,
    encode_latest,
    encode_update,
    merge,
)
from hub.config import KafkaConfig
from hub.storage import DeadLetter, TelemetryBatch, WriteBatch

values = st.one_of(
    # What the wire contract lets through: numbers within ±1e300, strings without NUL.
    st.floats(min_value=-wire.MAX_ABS_NUMBER, max_value=wire.MAX_ABS_NUMBER),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20),
)
readings = st.lists(
    st.builds(
        wire.Reading,
        tag=st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True),
        ts=st.integers(0, 2**45),
        v=values,
        q=st.sampled_from(["good", "uncertain", "bad"]),
    ),
    min_size=1,
    max_size=30,
)


@given(readings)
def test_record_values_are_the_readings_as_json_in_ts_order(rs: list[wire.Reading]) -> None:
    n, body = encode_readings(rs)
    row = OutboxRow(1, 0, "s1", "l/1", 'm"1', "src", 7, n, body)
    got = [json.loads(v) for v in record_values(row)]
    want = sorted(rs, key=lambda r: r.ts)
    assert n == len(rs) == len(got)
    for g, r in zip(got, want, strict=True):
        assert g == {
            "site": "s1",
            "line": "l/1",
            "machine": 'm"1',
            "tag": r.tag,
            "ts": r.ts,
            "v": r.v,
            "q": r.q,
        }
        assert type(g["v"]) is type(r.v)


def test_split_batch_stops_at_the_reading_limit_but_takes_one_row() -> None:
    rows = [OutboxRow(i, 0, "s", "l", "m", "x", i, n, "") for i, n in enumerate([400, 400, 400])]
    assert split_batch(rows, 1000) == 2
    assert split_batch(rows, 100) == 1
    assert split_batch(rows, 10_000) == 3


def test_cursor_round_trip_and_junk() -> None:
    assert decode_cursor(encode_cursor((9_000_000_001, 42), 1)) == (9_000_000_001, 42)
    # A relay's cursor from before shards: an id, of rows that all have xid 0.
    assert decode_cursor(b'{"cursor": 42, "at": 1}') == (0, 42)
    for junk in (None, b"", b"{", b"[]", b'{"cursor": "x"}', b'{"cursor": 1, "xid": "y"}'):
        assert decode_cursor(junk) is None


@pytest.mark.parametrize(
    ("shards", "relays", "each"), [(8, 1, 8), (8, 3, 3), (8, 4, 2), (8, 9, 1), (1, 0, 1)]
)
def test_relays_share_the_shards(shards: int, relays: int, each: int) -> None:
    assert shares(shards, relays) == each
    assert shares(shards, relays) * max(1, relays) >= shards  # every shard has a taker


def test_min_insync_replicas_goes_on_every_topic_only_when_set() -> None:
    plain = topic_specs(KafkaConfig(bootstrap="k:9092"))
    assert all("min.insync.replicas" not in s.config for s in plain)
    cfg = KafkaConfig(bootstrap="k:9092", replication_factor=3, min_insync_replicas=2)
    specs = topic_specs(cfg)
    assert {s.config["min.insync.replicas"] for s in specs} == {"2"}
    assert len(specs) == len(plain)
    assert specs[1].config["cleanup.policy"] == "compact"  # the other settings stay
    with pytest.raises(ValueError, match="min_insync_replicas 3 > replication_factor 2"):
        KafkaConfig(bootstrap="k:9092", replication_factor=2, min_insync_replicas=3)


def test_outbox_rows_keep_only_inserted_readings_once() -> None:
    r = [wire.Reading(tag="a", ts=t, v=1.0) for t in (1, 2, 2, 3)]
    t = TelemetryBatch("s", "l", "m", "src", 1, r)
    dead = DeadLetter("ms/v1/x", b"\xff", "bad_utf8", "no", 5, "src")
    rows = outbox_values(WriteBatch(telemetry=[t], dead_letters=[dead]), {2, 3, 4})
    assert [row[6] for row in rows] == [2, 1]  # ts 2 once (both indices), ts 3; then the letter
    assert rows[1][0] == KIND_DEAD_LETTER
    assert json.loads(rows[1][7])["reason"] == "bad_utf8"
    assert outbox_values(WriteBatch(telemetry=[t]), set()) == []
    assert outbox_values(WriteBatch(telemetry=[t]), None)[0][6] == 4


def test_latest_moves_forward_only() -> None:
    b1 = TelemetryBatch("s", "l", "m", "x", 1, [wire.Reading(tag="a", ts=5, v=1.0)])
    b2 = TelemetryBatch(
        "s",
        "l",
        "m",
        "x",
        2,
        [wire.Reading(tag="a", ts=3, v=2.0), wire.Reading(tag="b", ts=1, v="on")],
    )
    pending = coalesce([b1, b2])
    assert pending == {"s/l/m": {"a": Latest(1.0, 5, "good"), "b": Latest("on", 1, "good")}}
    merged = merge({"s/l/m": {"a": Latest(9.0, 9, "bad")}}, pending)
    assert merged["s/l/m"]["a"] == Latest(9.0, 9, "bad")


def test_redis_encodings_round_trip() -> None:
    latest = Latest(True, 17, "uncertain")
    assert decode_latest(encode_latest(latest)) == latest
    update = Update("hub-1", "s/l/m", (("a", 17, True, "uncertain"), ("b", 18, "on", "good")))
    upd = decode_update(encode_update(update))
    assert upd == update
    assert upd.parts == ("s", "l", "m")
    for junk in (
        b"x",
        b"{}",
        b'{"o": "h", "m": "a/b", "r": []}',
        b'{"o": "h", "m": "a/b/c", "r": [["x", 1]]}',
        b'{"m": "a/b/c", "r": []}',
    ):
        assert decode_update(junk) is None
