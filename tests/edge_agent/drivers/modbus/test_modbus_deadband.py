"""Deadband: report only moves larger than the band, always report quality changes."""

from __future__ import annotations

from edge_agent.drivers.base import Sample
from edge_agent.drivers.deadband import DeadbandFilter, exceeds_deadband


def test_exceeds_deadband() -> None:
    assert exceeds_deadband(10.0, 10.6, 0.5)
    assert not exceeds_deadband(10.0, 10.5, 0.5)
    assert exceeds_deadband(10.0, 10.0, None)
    assert exceeds_deadband(True, False, 5.0)
    assert not exceeds_deadband("a", "a", 1.0)
    assert not exceeds_deadband(None, None, None)
    assert exceeds_deadband(None, 1.0, 5.0)


def test_filter_compares_with_last_reported_not_last_seen() -> None:
    band = DeadbandFilter({"t": 0.5})
    values = [10.0, 10.3, 10.45, 10.6, 10.2, 9.9]
    reported = [
        s.value for s in band.filter([Sample("t", i, v, "good") for i, v in enumerate(values)])
    ]
    # 10.3, 10.45 stay within 0.5 of 10.0; 10.6 moves 0.6; 10.2 within 0.5 of 10.6; 9.9 moves 0.7.
    assert reported == [10.0, 10.6, 9.9]


def test_quality_change_is_always_reported() -> None:
    band = DeadbandFilter({"t": 100.0})
    assert band.admit(Sample("t", 0, 1.0, "good"))
    assert band.admit(Sample("t", 1, None, "bad"))
    assert band.admit(Sample("t", 2, 1.0, "good"))
    assert not band.admit(Sample("t", 3, 2.0, "good"))
    assert band.admit(Sample("other", 3, 2.0, "good"))
    assert band.admit(Sample("t", 4, None, "bad"))
    assert not band.admit(Sample("t", 5, None, "bad"))


def test_a_steady_value_is_reported_again_after_its_max_interval() -> None:
    # Polled every second, never moving: reported at 0 s, then once every 60 s (its heartbeat),
    # so the hub can tell a steady machine from a silent one.
    band = DeadbandFilter({"t": 1.0}, {"t": 60_000})
    reported = [
        s.ts for s in band.filter([Sample("t", ms, 5.0, "good") for ms in range(0, 181_000, 1000)])
    ]
    assert reported == [0, 60_000, 120_000, 180_000]
    # A move within the interval restarts it: the next heartbeat is 60 s after the move.
    assert band.admit(Sample("t", 185_000, 7.0, "good"))
    assert not band.admit(Sample("t", 244_000, 7.0, "good"))
    assert band.admit(Sample("t", 245_000, 7.0, "good"))
    # A tag that stays bad is repeated on the heartbeat too (still bad, not forgotten).
    bad = DeadbandFilter({}, {"b": 10_000})
    assert [bad.admit(Sample("b", ms, None, "bad")) for ms in (0, 5_000, 10_000)] == [
        True,
        False,
        True,
    ]


def test_without_a_deadband_every_value_goes_and_a_missing_one_once() -> None:
    # The filter's fast path for profiles without deadbands judges like admit() does.
    fast = DeadbandFilter({})
    slow = DeadbandFilter({"other": 1.0})  # any deadband: the general path, tag `t` without one
    samples = [
        Sample("t", 1, 5.0, "good"),
        Sample("t", 2, 5.0, "good"),  # unchanged: still reported (no deadband)
        Sample("t", 3, None, "bad"),
        Sample("t", 4, None, "bad"),  # still no value: not again
        Sample("t", 5, 6.0, "good"),
        Sample("t", 6, None, "bad"),  # a value, then none: reported
        Sample("t", 7, None, "uncertain"),  # quality changed: reported
    ]
    expected = [1, 2, 3, 5, 6, 7]
    assert [s.ts for s in fast.filter(samples)] == expected
    assert [s.ts for s in slow.filter(samples)] == expected
