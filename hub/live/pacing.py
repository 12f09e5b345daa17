"""A WebSocket client's send pacing (pure): a token bucket, one send per period on average.

Not a fixed gap after each send: with a gap, a source exactly as fast as the period (10 Hz
against 100 ms) makes every late update push all later sends back by its lateness, and the
lateness only ever grows, until each update waits a whole period. With `burst` sends banked,
the update after a late one goes out at once, and the long-run rate stays one per period.
The bank must also cover such a source's hiccups: updates that arrive together after a pause
spend banked sends, and the source never gives them back.
"""

from __future__ import annotations

__all__ = ["Pacer"]


class Pacer:
    """Token bucket over caller-supplied times (seconds, monotonic)."""

    def __init__(self, period: float, burst: float, now: float) -> None:
        self._period = period
        self._burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._period)
        self._last = now

    def wait(self, now: float) -> float:
        """Seconds to wait before the next send may go (0 when it may go now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) * self._period

    def spend(self, now: float) -> None:
        """Record a send at `now`."""
        self._refill(now)
        self._tokens -= 1.0
