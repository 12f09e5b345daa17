"""Stale-data rule: a subscription sending neither data nor keep-alives is dead, TCP or not."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StaleWatchdog"]


@dataclass(slots=True)
class StaleWatchdog:
    """Tracks the last publish response (data or keep-alive) and says when the session is stale."""

    publishing_interval_s: float
    keepalive_count: int = 1
    intervals: int = 3
    # Floor so an event loop delayed by a busy line PC is not mistaken for a dead server.
    min_s: float = 1.0
    last_activity_s: float = 0.0

    @property
    def limit_s(self) -> float:
        """Silence longer than this means stale: `intervals` keep-alive periods."""
        period = self.publishing_interval_s * max(self.keepalive_count, 1)
        return max(self.intervals * period, self.min_s)

    def feed(self, now_s: float) -> None:
        """Record a publish response (notification or keep-alive) at monotonic time `now_s`."""
        self.last_activity_s = now_s

    def is_stale(self, now_s: float) -> bool:
        """True when nothing arrived for longer than `limit_s`."""
        return now_s - self.last_activity_s > self.limit_s
