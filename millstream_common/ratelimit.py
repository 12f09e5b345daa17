"""The token bucket (pure arithmetic: `now` passed in), for every rate limit in Millstream.

A bucket holds up to `burst` tokens and refills at `rate` tokens per second. `take` spends only
what is there (a request is allowed or refused: the hub's API and dead-letter limits); a
`TokenBucket` may go into debt and says how long to wait it off (a pace: the agent's backlog
lane sends a batch, then waits).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Bucket", "TokenBucket", "take"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """Tokens left and when they were last counted (seconds, any monotonic origin)."""

    tokens: float
    at: float


def _refill(bucket: Bucket | None, now: float, rate: float, burst: float) -> float:
    if bucket is None:
        return float(burst)
    return min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate)


def take(
    bucket: Bucket | None, now: float, rate: float, burst: float, cost: float = 1.0
) -> tuple[bool, Bucket, float]:
    """Spend `cost` tokens if there are that many: (allowed, new bucket, seconds until there
    are if refused). A new key (`bucket` None) starts full."""
    tokens = _refill(bucket, now, rate, burst)
    if tokens >= cost:
        return True, Bucket(tokens - cost, now), 0.0
    return False, Bucket(tokens, now), (cost - tokens) / rate


class TokenBucket:
    """A pace of `rate` units per second with bursts of up to `burst` units."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._bucket = Bucket(burst, now)

    def take(self, amount: float, now: float) -> float:
        """Spend `amount` (into debt if need be); return how long to wait before acting (0 if
        within budget)."""
        tokens = _refill(self._bucket, now, self.rate, self.burst) - amount
        self._bucket = Bucket(tokens, now)
        return 0.0 if tokens >= 0 else -tokens / self.rate
