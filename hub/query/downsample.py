"""History downsampling (pure): which source answers a range within `max_points`, and how
rollup buckets merge into wider ones.

Rule: raw readings when the range holds at most `max_points` of them; otherwise buckets of the
narrowest width (a whole number of minutes, or of hours once a minute grid would need wider
than an hour) such that the buckets overlapping the range never exceed `max_points`. Every
bucket keeps min and max, so a one-sample spike is still visible at any zoom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hub.storage.model import RollupRow

__all__ = ["HOUR_MS", "MINUTE_MS", "Plan", "merge_buckets", "plan_history"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Plan:
    """Where to read a range from: raw rows, or `source` rollups merged into `width_ms`."""

    kind: Literal["raw", "rollup"]
    source: Literal["minute", "hour"] = "minute"
    width_ms: int = 0


def _buckets_overlapping(start_ms: int, end_ms: int, width_ms: int) -> int:
    """Aligned buckets of `width_ms` that overlap [start_ms, end_ms)."""
    first = start_ms - start_ms % width_ms
    return (end_ms - 1 - first) // width_ms + 1


def plan_history(start_ms: int, end_ms: int, max_points: int, readings_upper_bound: int) -> Plan:
    """Choose raw or a bucket width; `readings_upper_bound` may overcount, never undercount."""
    if max_points < 1 or end_ms <= start_ms:
        raise ValueError("need max_points >= 1 and start < end")
    if readings_upper_bound <= max_points:
        return Plan("raw")
    span = end_ms - start_ms
    minutes = max(1, -(-span // (MINUTE_MS * max_points)))
    while _buckets_overlapping(start_ms, end_ms, minutes * MINUTE_MS) > max_points:
        minutes += 1
    if minutes < 60:
        return Plan("rollup", "minute", minutes * MINUTE_MS)
    hours = max(1, -(-span // (HOUR_MS * max_points)))
    while _buckets_overlapping(start_ms, end_ms, hours * HOUR_MS) > max_points:
        hours += 1
    return Plan("rollup", "hour", hours * HOUR_MS)


def merge_buckets(rows: Iterable[RollupRow], width_ms: int) -> list[RollupRow]:
    """Merge ordered rollup rows into aligned buckets of `width_ms` (a multiple of theirs)."""
    out: list[RollupRow] = []
    for row in rows:
        bucket = row.bucket - row.bucket % width_ms
        if out and out[-1].bucket == bucket:
            cur = out[-1]
            later = row.last_ts > cur.last_ts
            out[-1] = RollupRow(
                bucket,
                min(cur.min, row.min),
                max(cur.max, row.max),
                cur.sum + row.sum,
                cur.count + row.count,
                row.last_ts if later else cur.last_ts,
                row.last_value if later else cur.last_value,
            )
        else:
            out.append(
                RollupRow(bucket, row.min, row.max, row.sum, row.count, row.last_ts, row.last_value)
            )
    return out
