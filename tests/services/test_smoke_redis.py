"""Redis through redis-py's asyncio client: a round trip."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from tests.harness import Redis

pytestmark = pytest.mark.services


async def test_redis_round_trip(redis: Redis) -> None:
    client = aioredis.from_url(redis.url)
    key = f"ms:test:{uuid.uuid4().hex}"
    try:
        await client.hset(key, mapping={"v": "85.4", "q": "good"})
        assert await client.hgetall(key) == {b"v": b"85.4", b"q": b"good"}
    finally:
        await client.delete(key)
        await client.aclose()
