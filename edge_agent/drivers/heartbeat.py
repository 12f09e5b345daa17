"""Re-send a pushed value that has not changed, so a steady machine is not taken for a silent one.

Protocols that push (OPC-UA subscriptions) send a value only when it changes: a tank level that
holds still sends nothing for hours, and the hub could not tell that from a dead link. While the
session is up, the last value is still the current one, so it is re-sent with the current time
once it is older than its tag's `max_interval` (pure: `now_ms` passed in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

from edge_agent.drivers.base import Sample

__all__ = ["Heartbeat"]

_tag_of = itemgetter(0)  # Sample.tag


@dataclass(slots=True)
class Heartbeat:
    """The newest sample of every tag with a heartbeat, and which of them are due again."""

    intervals: dict[str, int]  # tag → max_interval in ms
    _last: dict[str, Sample] = field(default_factory=dict)

    def seen(self, samples: list[Sample]) -> None:
        """Remember what was delivered."""
        # In C: a publish response brings thousands of samples, nearly always all of tags with
        # a heartbeat (subscribed ones), newest last.
        newest = dict(zip(map(_tag_of, samples), samples, strict=True))
        if newest.keys() <= self.intervals.keys():
            self._last.update(newest)
            return
        for tag, sample in newest.items():
            if tag in self.intervals:
                self._last[tag] = sample

    def due(self, now_ms: int) -> list[Sample]:
        """The samples to re-send now: last value and quality, stamped `now_ms`."""
        out: list[Sample] = []
        for tag, last in self._last.items():
            if now_ms - last.ts >= self.intervals[tag]:
                # Never at or before the last timestamp: (machine, tag, ts) names one reading.
                out.append(Sample(tag, max(now_ms, last.ts + 1), last.value, last.quality))
        self.seen(out)
        return out

    def forget(self) -> None:
        """The session is gone: what it delivered is no longer known to be current."""
        self._last.clear()
