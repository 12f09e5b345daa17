"""Publisher counters and rates (pure: `now` passed in)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PublishStats", "Rate"]


@dataclass
class Rate:
    """Events per second over a sliding window of whole seconds."""

    window: int = 10
    _buckets: dict[int, int] = field(default_factory=dict)

    def add(self, count: int, now: float) -> None:
        """Record `count` events at `now`."""
        second = int(now)
        self._buckets[second] = self._buckets.get(second, 0) + count
        for old in [s for s in self._buckets if s < second - self.window]:
            del self._buckets[old]

    def per_second(self, now: float) -> float:
        """Average rate over the last `window` complete seconds."""
        second = int(now)
        total = sum(c for s, c in self._buckets.items() if second - self.window <= s < second)
        return total / self.window


@dataclass
class PublishStats:
    """What the publisher has done, for agent status and metrics."""

    connected: bool = False
    connects: int = 0
    last_error: str = ""
    published_batches: int = 0
    published_readings: int = 0
    republished_batches: int = 0
    acked_readings: int = 0
    receipts: int = 0
    last_receipt_at: float | None = None
    # The backlog's pace the hubs' drain budget allows now (None: none heard, backlog_rate).
    drain_budget: float | None = None
    live: Rate = field(default_factory=Rate)
    backlog: Rate = field(default_factory=Rate)
