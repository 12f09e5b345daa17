"""The drain budget's payload and topic (wire/drain.py)."""

from __future__ import annotations

import pytest

import wire


def test_round_trip_and_withdrawal() -> None:
    budget = wire.DrainBudget(1800.04, 200_000.0, 100, 1_763_900_000_123)
    got = wire.parse_drain(wire.encode_drain(budget))
    assert got is not None
    assert (got.per_agent, got.capacity, got.draining, got.ts) == (
        1800.0,
        200_000.0,
        100,
        1_763_900_000_123,
    )
    assert wire.parse_drain(b"") is None  # the instance is gone
    assert wire.drain_topic("hub-1") == "ms/v1/hub/drain/hub-1"


@pytest.mark.parametrize(
    "junk",
    [b"{", b"[]", b'{"v": 2, "per_agent": 1, "capacity": 1, "draining": 0, "ts": 1}',
     b'{"v": 1, "per_agent": -1, "capacity": 1, "draining": 0, "ts": 1}',
     b'{"v": 1, "per_agent": "x", "capacity": 1, "draining": 0, "ts": 1}',
     b'{"v": 1, "capacity": 1, "draining": 0, "ts": 1}'],
)  # fmt: skip
def test_anything_else_is_refused(junk: bytes) -> None:
    with pytest.raises(wire.PayloadError):
        wire.parse_drain(junk)


def test_hub_is_a_reserved_site() -> None:
    with pytest.raises(wire.PayloadError, match="reserved"):
        wire.telemetry_topic("hub", "drain", "m1")
