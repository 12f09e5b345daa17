"""What one device produced, per minute of reading time (pure: `now` passed in).

The hub's completeness view compares this with what it stored; whether the device answered at
all is its `DeviceHealth` (edge_agent/drivers/health.py), which the driver feeds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from edge_agent.buffer import Reading
from edge_agent.publish import Rate

__all__ = ["PRODUCED_MINUTES", "Production"]

# Minutes of per-minute production repeated in every status message (sent every 10 s): a
# minute is reported many times, so the hub's completeness view survives lost status messages.
PRODUCED_MINUTES = 10
_MINUTE_MS = 60_000
_ts, _q = itemgetter(1), itemgetter(3)  # Reading.ts, Reading.q
_GOOD_ONLY = {"good"}


@dataclass
class Production:
    """Readings produced in total, per minute of reading time, and the newest good one."""

    last_good_ts: int | None = None
    produced: int = 0
    skipped: int = 0  # samples the runtime could not turn into readings
    _per_minute: Rate = field(default_factory=lambda: Rate(window=60))
    _minutes: dict[int, int] = field(default_factory=dict)

    def record(self, readings: list[Reading], skipped: int, now: float) -> None:
        """Account one delivery of samples."""
        self.produced += len(readings)
        self.skipped += skipped
        self._per_minute.add(len(readings), now)
        minutes = self._minutes
        # A poll's readings share a timestamp or a few: counted in C, then each distinct one
        # taken once, instead of a Python step per reading.
        stamps = Counter(map(_ts, readings))
        for ts, n in stamps.items():
            start = ts - ts % _MINUTE_MS
            minutes[start] = minutes.get(start, 0) + n
        if set(map(_q, readings)) == _GOOD_ONLY:  # the common poll
            self.last_good_ts = max(stamps)
        else:
            good = [r.ts for r in readings if r.q == "good"]
            if good:
                self.last_good_ts = max(good)
        if len(minutes) > PRODUCED_MINUTES:
            for start in sorted(minutes)[:-PRODUCED_MINUTES]:
                del minutes[start]

    def per_minute(self, now: float) -> float:
        """Readings produced over the last minute (the hub's completeness view)."""
        return self._per_minute.per_second(now) * 60

    def produced_minutes(self) -> tuple[tuple[int, int], ...]:
        """(minute start ms, readings produced) for the newest minutes, by reading timestamp."""
        return tuple(sorted(self._minutes.items()))
