"""Rate limits shared through a real Redis; memory takes over while Redis is unreachable."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.auth import FallbackRateLimiter, MemoryRateLimiter, RedisRateLimiter

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_redis_buckets_are_shared_and_refill(redis: Any) -> None:
    key = uuid.uuid4().hex
    clients = [aioredis.from_url(f"redis://{redis.host}:{redis.port}") for _ in range(2)]
    try:
        # Two limiters (as two hub instances) spend from one bucket.
        a, b = (RedisRateLimiter(c) for c in clients)
        waits = [await (a if i % 2 else b).hit(key, 1000.0, 60, 4) for i in range(5)]
        assert waits[:4] == [0.0] * 4
        assert waits[4] == pytest.approx(1.0)
        assert await a.hit(key, 1001.0, 60, 4) == 0.0  # refilled one token in a second
    finally:
        for c in clients:
            await c.aclose()


async def test_memory_takes_over_while_redis_is_down() -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    limiter = FallbackRateLimiter(
        RedisRateLimiter(dead), MemoryRateLimiter(), (RedisError, OSError, TimeoutError)
    )
    try:
        waits = [await limiter.hit("k", 50.0, 60, 2) for _ in range(3)]
        assert waits[:2] == [0.0, 0.0]
        assert waits[2] > 0
    finally:
        await dead.aclose()
