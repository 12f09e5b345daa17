from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", 1024**3),
        ("500MB", 500_000_000),
        ("500 MB", 500_000_000),
        ("4096", 4096),
        ("64KiB", 65536),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("2tb", 2 * 10**12),
        ("10B", 10),
        (123, 123),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("3s", timedelta(seconds=3)),
        ("100ms", timedelta(milliseconds=100)),
        ("5m", timedelta(minutes=5)),
        ("5min", timedelta(minutes=5)),
        ("12h", timedelta(hours=12)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("90", timedelta(seconds=90)),
        ("0.5s", timedelta(milliseconds=500)),
        (30, timedelta(seconds=30)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "1GB2", "1 XB", "-5MB", "1.0000001B", "lots"])
def test_bad_sizes_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|unit|bytes"):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "7 days", "3x", "1h30", "s", "-1s"])
def test_bad_durations_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|unit"):
        parse_duration(text)


def test_booleans_are_not_sizes_or_durations() -> None:
    # YAML reads `yes`/`true` as booleans; they must not become 1 byte or 1 second.
    with pytest.raises(ValueError, match="true/false"):
        parse_size(True)
    with pytest.raises(ValueError, match="true/false"):
        parse_duration(True)


@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trips_through_format(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trips_through_format(millis: int) -> None:
    duration = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(duration)) == duration


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["B", "kB", "MB", "GB", "KiB", "MiB", "GiB"]),
)
def test_size_units_multiply(number: int, unit: str) -> None:
    factor = {"B": 1, "kB": 1000, "MB": 10**6, "GB": 10**9, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}
    assert parse_size(f"{number}{unit}") == number * factor[unit]
