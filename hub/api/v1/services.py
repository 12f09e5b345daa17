"""What the API's handlers need, opened together: database, auth, queries, limiter, clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.auth import (
    AuthService,
    AuthStore,
    FallbackRateLimiter,
    MemoryRateLimiter,
    RateLimited,
    RateLimiter,
    RedisRateLimiter,
    jwt_secret,
)
from hub.bridge.redis.model import Latest
from hub.config import HubConfig
from hub.errors import LiveUnavailable
from hub.live import Fanout
from hub.query import ReadQueries
from hub.sql import Database, open_database

__all__ = ["ApiServices", "RedisLatest", "open_api_services"]

# RedisLive.latest: (site, line, machine) -> {tag: Latest}; raises LiveUnavailable.
RedisLatest = Callable[[str, str, str], Awaitable[Mapping[str, Latest]]]


@dataclass
class ApiServices:
    """Handles the routers close over."""

    config: HubConfig
    auth: AuthService
    queries: ReadQueries
    fanout: Fanout
    db: Database
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    clock: Callable[[], float] = time.time
    redis_latest: RedisLatest | None = None
    # Publishes on the hub's broker session (commands to agents); None without one.
    publish: Callable[[str, bytes], object] | None = None

    async def latest(self, site: str, line: str, machine: str) -> list[dict[str, Any]]:
        """Newest reading per tag of one machine: Redis when configured and up, else storage."""
        if self.redis_latest is not None:
            try:
                values = await self.redis_latest(site, line, machine)
            except LiveUnavailable:
                pass  # Redis down: storage has every committed reading too
            else:
                ids = await self.queries.machine_series(site, line, machine)
                return [
                    {"series_id": ids[tag], "tag": tag, "ts": x.ts, "v": x.v, "q": x.q}
                    for tag, x in sorted(values.items())
                    if tag in ids
                ]
        return await self.queries.latest(site, line, machine)

    def now_ms(self) -> int:
        """Wall clock in epoch ms (from the injected clock)."""
        return int(self.clock() * 1000)

    async def limit(self, key: str, per_minute: int) -> None:
        """Spend one request of `key`'s budget or raise `RateLimited`."""
        # Burst: ten seconds' worth (at least 5), so a dashboard opening many charts at once
        # is not refused while a sustained flood is.
        burst = max(5, per_minute // 6)
        wait = await self.limiter.hit(key, self.clock(), per_minute, burst)
        if wait > 0:
            raise RateLimited(wait)


@asynccontextmanager
async def open_api_services(
    config: HubConfig,
    fanout: Fanout,
    *,
    limiter: RateLimiter | None = None,
    clock: Callable[[], float] = time.time,
    redis_latest: RedisLatest | None = None,
    publish: Callable[[str, bytes], object] | None = None,
) -> AsyncIterator[ApiServices]:
    """Open the API's own database connections; `ConfigError` for a missing/weak JWT secret."""
    secret = jwt_secret(config)  # refuse to start before opening anything
    redis_client = None
    if limiter is None:
        limiter = MemoryRateLimiter()
        if config.redis is not None:
            # Shared buckets across hub instances; memory while Redis is down.
            redis_client = aioredis.from_url(config.redis.url, socket_timeout=1.0)
            limiter = FallbackRateLimiter(
                RedisRateLimiter(redis_client), limiter, (RedisError, OSError, TimeoutError)
            )
    async with contextlib.AsyncExitStack() as stack:
        if redis_client is not None:
            stack.push_async_callback(redis_client.aclose)
        db = await stack.enter_async_context(open_database(config.storage))
        auth = AuthService(AuthStore(db), secret, config.api, clock)
        yield ApiServices(
            config,
            auth,
            ReadQueries(db),
            fanout,
            db,
            limiter,
            clock,
            redis_latest,
            publish,
        )
