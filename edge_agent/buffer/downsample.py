"""Replace raw points of the oldest data by per-minute min/max/avg/last (pure).

min, max and last are real readings, kept with their own timestamps so the hub's dedup by
`(machine, tag, ts)` still holds. The average has no source timestamp of its own; it is sent as
tag `<tag>_avg1m` at the start of the minute with quality `uncertain`. Non-numeric series keep
only their last point per minute.
"""

from __future__ import annotations

from edge_agent.buffer.readings import Reading

__all__ = ["AVG_SUFFIX", "downsample"]

AVG_SUFFIX = "_avg1m"
_MINUTE_MS = 60_000


def downsample(readings: list[Reading]) -> list[Reading]:
    """Return the per-minute summary of `readings`, ordered by timestamp."""
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.tag, r.ts - r.ts % _MINUTE_MS), []).append(r)
    out: dict[tuple[str, int], Reading] = {}
    for (tag, minute), rs in groups.items():
        last = max(rs, key=lambda r: r.ts)
        out[(last.tag, last.ts)] = last
        numeric = [r for r in rs if isinstance(r.v, int | float) and not isinstance(r.v, bool)]
        if len(numeric) != len(rs) or tag.endswith(AVG_SUFFIX):
            continue
        lo = min(numeric, key=lambda r: (r.v, r.ts))
        hi = max(numeric, key=lambda r: (r.v, -r.ts))
        out[(lo.tag, lo.ts)] = lo
        out[(hi.tag, hi.ts)] = hi
        if len(rs) > 3:
            avg = sum(float(r.v) for r in numeric) / len(numeric)
            out[(tag + AVG_SUFFIX, minute)] = Reading(tag + AVG_SUFFIX, minute, avg, "uncertain")
    return sorted(out.values(), key=lambda r: (r.ts, r.tag))
