"""Rate limiting: a token bucket per key (`millstream_common.ratelimit`), in memory or in Redis.

The bucket holds up to `burst` requests and refills at `per_minute / 60` per second; a request
takes one token or is refused with the time until one is back.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, Protocol

from millstream_common.ratelimit import Bucket, take

log = logging.getLogger(__name__)

__all__ = ["FallbackRateLimiter", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]


class RateLimiter(Protocol):
    """Spends one request of `key`'s budget; returns seconds to wait (0.0 = allowed)."""

    async def hit(self, key: str, now: float, per_minute: int, burst: int) -> float: ...


class MemoryRateLimiter:
    """Buckets in a bounded LRU dict: one hub instance, no Redis."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._max_keys = max_keys

    async def hit(self, key: str, now: float, per_minute: int, burst: int) -> float:
        """Spend one token of `key`; the wait in seconds when refused, else 0.0."""
        ok, bucket, wait = take(self._buckets.get(key), now, per_minute / 60.0, burst)
        self._buckets[key] = bucket
        self._buckets.move_to_end(key)
        # An attacker cycling addresses must not grow memory without bound; an evicted key
        # restarts with a full bucket, which only ever errs towards allowing.
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0.0 if ok else wait


# Redis: the same bucket, updated atomically server-side, so every hub instance shares it.
_LUA = """
local raw = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = burst
if raw[1] then
  tokens = math.min(burst, tonumber(raw[1]) + math.max(0, now - tonumber(raw[2])) * rate)
end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis (shared by hub instances); `now` must be wall-clock seconds."""

    def __init__(self, client: Any, prefix: str = "ms:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_LUA)

    async def hit(self, key: str, now: float, per_minute: int, burst: int) -> float:
        """Spend one token of `key` in Redis; the wait in seconds when refused, else 0.0."""
        raw = await self._script(keys=[self._prefix + key], args=[now, per_minute / 60.0, burst])
        wait = float(raw)
        return 0.0 if wait <= 0 or math.isnan(wait) else wait


class FallbackRateLimiter:
    """Redis first; while Redis fails, this instance's memory (limits never turn into 500s)."""

    def __init__(
        self,
        primary: RateLimiter,
        fallback: RateLimiter,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._errors = errors
        self._failing = False

    async def hit(self, key: str, now: float, per_minute: int, burst: int) -> float:
        """Spend one token in Redis, or in memory while Redis is unreachable."""
        try:
            wait = await self._primary.hit(key, now, per_minute, burst)
        except self._errors as exc:
            if not self._failing:  # once per outage, not per request
                log.warning("rate limits fall back to per-instance memory: %s", exc)
                self._failing = True
            return await self._fallback.hit(key, now, per_minute, burst)
        self._failing = False
        return wait
