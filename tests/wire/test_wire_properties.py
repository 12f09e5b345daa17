"""Property tests: every valid batch round-trips; no input raises anything but PayloadError."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wire

NOW = 1_763_900_000_000
TOPIC = "ms/v1/plant1/line3/cnc7/telemetry"

segments = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z").filter(lambda s: s not in wire.RESERVED_SITES)
tags = st.from_regex(r"\A[A-Za-z0-9_.-]{1,128}\Z")
values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(min_value=-wire.MAX_ABS_NUMBER, max_value=wire.MAX_ABS_NUMBER),
    # At most 4 bytes per character: 256 characters never exceed 1 KiB. Surrogates and NUL are
    # excluded (NUL is refused: storage cannot hold it).
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=256),
)
readings = st.builds(
    wire.Reading,
    tag=tags,
    ts=st.integers(NOW - wire.MAX_PAST_MS, NOW + wire.MAX_FUTURE_MS),
    v=values,
    q=st.sampled_from(["good", "uncertain", "bad"]),
)
batches = st.tuples(
    segments, st.integers(0, wire.MAX_SEQ), st.lists(readings, min_size=1, max_size=50)
)


def typed(items: Any) -> list[tuple[str, int, type, Any, str]]:
    """Readings with the value's type, so 1, 1.0 and True never compare equal by accident."""
    return [(r.tag, r.ts, type(r.v), r.v, r.q) for r in items]


@given(batch=batches)
def test_every_valid_batch_round_trips(batch: tuple[str, int, list[wire.Reading]]) -> None:
    src, seq, items = batch
    parsed = wire.parse_telemetry(TOPIC, wire.encode_telemetry(src, seq, items), NOW)
    assert (parsed.src, parsed.seq) == (src, seq)
    assert typed(parsed.readings) == typed(items)
    assert parsed == wire.Telemetry(
        site="plant1", line="line3", machine="cnc7", src=src, seq=seq, readings=items
    )


def assert_refused_or_valid(topic: str, payload: bytes) -> None:
    """parse_telemetry either refuses with a known reason or returns a batch inside every limit."""
    try:
        batch = wire.parse_telemetry(topic, payload, NOW)
    except wire.PayloadError as exc:
        refused: wire.PayloadError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.reason in wire.REASONS
        assert str(refused)
        return
    assert 1 <= len(batch.readings) <= wire.MAX_READINGS
    for reading in batch.readings:
        assert NOW - wire.MAX_PAST_MS <= reading.ts <= NOW + wire.MAX_FUTURE_MS
        assert type(reading.ts) is int
        assert reading.q in ("good", "uncertain", "bad")
        if isinstance(reading.v, float):
            assert math.isfinite(reading.v)
        if isinstance(reading.v, str):
            assert len(reading.v.encode()) <= wire.MAX_STRING_BYTES


@given(payload=st.binary(max_size=2048))
@example(payload=b"[" * 20_000)
@example(payload=b'{"v":1,"src":"a","seq":1,"readings":[{"tag":"t","ts":1,"v":NaN}]}')
def test_arbitrary_bytes_raise_only_payload_error(payload: bytes) -> None:
    assert_refused_or_valid(TOPIC, payload)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(value=json_values)
def test_arbitrary_json_raises_only_payload_error(value: Any) -> None:
    assert_refused_or_valid(TOPIC, json.dumps(value).encode())


def near_miss(draw: st.DrawFn) -> bytes:
    """A batch where some fields are valid and others arbitrary JSON: deep into validation."""
    reading = {
        "tag": draw(tags | json_values),
        "ts": draw(st.integers(NOW - 2 * wire.MAX_PAST_MS, NOW + wire.MAX_PAST_MS) | json_values),
        "v": draw(values | json_values),
        "q": draw(st.sampled_from(["good", "bad", "uncertain"]) | json_values),
    }
    if draw(st.booleans()):
        del reading[draw(st.sampled_from(sorted(reading)))]
    body: dict[str, Any] = {
        "v": draw(st.just(1) | json_values),
        "src": draw(segments | json_values),
        "seq": draw(st.integers(-1, 2**64) | json_values),
        "readings": draw(st.lists(st.just(reading) | json_values, max_size=3) | json_values),
    }
    if draw(st.booleans()):
        body[draw(st.text(max_size=5))] = draw(json_values)
    return json.dumps(body).encode()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.composite(near_miss)())
def test_near_miss_batches_raise_only_payload_error(payload: bytes) -> None:
    assert_refused_or_valid(TOPIC, payload)


@given(topic=st.text(max_size=100) | st.lists(segments, max_size=7).map("/".join))
def test_arbitrary_topics_raise_only_payload_error(topic: str) -> None:
    try:
        parsed: wire.Topic | wire.PayloadError = wire.parse_topic(topic)
    except wire.PayloadError as exc:
        parsed = exc
    if isinstance(parsed, wire.PayloadError):
        assert parsed.reason == "bad_topic"
    else:
        assert str(parsed) == topic


@given(site=segments, line=segments, machine=segments)
def test_built_topics_parse_back(site: str, line: str, machine: str) -> None:
    assert wire.parse_topic(wire.telemetry_topic(site, line, machine)) == wire.MachineTopic(
        "telemetry", site, line, machine
    )
    assert wire.parse_topic(wire.status_topic(site, line, machine)) == wire.MachineTopic(
        "status", site, line, machine
    )
    assert wire.parse_topic(wire.receipt_topic(site)) == wire.ReceiptTopic(site)
    assert wire.parse_topic(wire.cmd_result_topic(line)) == wire.AgentTopic("cmd_res", line)


@given(seqs=st.lists(st.integers(0, 200), max_size=60))
def test_coalesced_ranges_cover_exactly_the_seqs(seqs: list[int]) -> None:
    ranges = wire.coalesce_seqs(seqs)
    assert {s for first, last in ranges for s in range(first, last + 1)} == set(seqs)
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first > last + 1  # sorted, disjoint and not adjacent: as few ranges as possible
    if ranges:
        receipt = wire.parse_receipt("ms/v1/receipts/pc", wire.encode_receipt(ranges))
        assert list(receipt.seqs) == ranges
        assert all(seq in receipt for seq in seqs)


# No deadline: four parsers per example, on a machine other test runs keep busy.
@settings(deadline=None)
@given(
    payload=st.binary(max_size=256)
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.fixed_dictionaries(
        {"v": st.just(1) | json_values, "state": json_values, "ts": json_values},
        optional={
            "detail": json_values,
            "poll_errors": json_values,
            "seqs": json_values,
            "tags": json_values,
        },
    ).map(lambda value: json.dumps(value).encode())
)
def test_status_and_receipt_parsers_raise_only_payload_error(payload: bytes) -> None:
    parsers: list[Callable[[], object]] = [
        lambda: wire.parse_status("ms/v1/p/l/m/status", payload),
        lambda: wire.parse_agent_status("ms/v1/agents/a/status", payload),
        lambda: wire.parse_receipt("ms/v1/receipts/a", payload),
        lambda: wire.parse_meta("ms/v1/p/l/m/meta", payload),
    ]
    for parse in parsers:
        try:
            parse()
        except wire.PayloadError as exc:
            reason: str | None = exc.reason
        else:
            reason = None
        assert reason is None or reason in wire.REASONS
