"""Token bucket for the backlog lane's readings/s budget (pure: `now` passed in)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allow `rate` units per second with bursts of up to `burst` units."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, amount: float, now: float) -> float:
        """Spend `amount`; return how long to wait before acting (0 if within budget)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
