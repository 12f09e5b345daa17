"""Minute and hour rollups, computed from the rows a write actually inserted (pure)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BUCKET_MS", "Bucket", "aggregate", "text_counts"]

BUCKET_MS = {"minute": 60_000, "hour": 3_600_000}

# (series_id, bucket, min, max, sum, count, last_ts, last_value)
Bucket = tuple[int, int, float, float, float, int, int, float]


def aggregate(rows: Iterable[tuple[int, int, float | None]], bucket_ms: int) -> list[Bucket]:
    """Fold (series_id, ts, value) rows into buckets, sorted by (series_id, bucket)."""
    acc: dict[tuple[int, int], list[float | int]] = {}
    for series_id, ts, value in rows:
        if value is None:  # text readings have no numeric rollup
            continue
        key = (series_id, ts - ts % bucket_ms)
        cur = acc.get(key)
        if cur is None:
            acc[key] = [value, value, value, 1, ts, value]
            continue
        cur[0] = min(cur[0], value)
        cur[1] = max(cur[1], value)
        cur[2] += value
        cur[3] += 1
        if ts > cur[4]:
            cur[4], cur[5] = ts, value
    return [
        (sid, b, float(c[0]), float(c[1]), float(c[2]), int(c[3]), int(c[4]), float(c[5]))
        for (sid, b), c in sorted(acc.items())
    ]


def text_counts(rows: Iterable[tuple[int, int, float | None]]) -> list[tuple[int, int, int]]:
    """(series_id, minute, count) of the rows without a numeric value, sorted (completeness)."""
    counts: dict[tuple[int, int], int] = {}
    for series_id, ts, value in rows:
        if value is None:
            key = (series_id, ts - ts % BUCKET_MS["minute"])
            counts[key] = counts.get(key, 0) + 1
    return [(sid, b, n) for (sid, b), n in sorted(counts.items())]
