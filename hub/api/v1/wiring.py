"""What the hub runtime adds for the API: the live fan-out fed from validated telemetry (or from
Redis pub/sub when Redis is configured, so updates from every hub instance arrive), and `/api/v1`
+ `/ws` mounted on its HTTP app for as long as the hub serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from hub.api.v1.app import mount_api
from hub.api.v1.services import open_api_services
from hub.bridge.redis import RedisLive
from hub.config import HubConfig
from hub.live import Fanout, make_update
from hub.storage import TelemetryBatch

__all__ = ["ApiWiring"]


class ApiWiring:
    """Owned by `Hub`: `on_validated` from the ingest, `run` as a task, `mounted(app)`."""

    def __init__(
        self, config: HubConfig, registry: CollectorRegistry, redis: RedisLive | None
    ) -> None:
        self.config = config
        self.fanout = Fanout()
        self._registry = registry
        self._redis = redis

    def on_validated(self, batches: Sequence[TelemetryBatch]) -> None:
        """Ingest hook: announce validated batches to local WebSocket clients (without Redis)."""
        # With Redis every instance, this one included, gets updates back over pub/sub (fed
        # after commit, with the latest values); delivering locally too would send them twice.
        if self._redis is None:
            self.fanout.publish(batches)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay Redis pub/sub updates to local clients until `stop` (no-op without Redis)."""
        if self._redis is None:
            await stop.wait()
            return
        async for update in self._redis.subscribe_updates():
            readings = [
                {"tag": tag, "ts": latest.ts, "v": latest.v, "q": latest.q}
                for tag, latest in update.values.items()
            ]
            if readings:
                self.fanout.deliver([make_update(update.machine, readings)])
            if stop.is_set():
                return

    @asynccontextmanager
    async def mounted(self, app: FastAPI) -> AsyncIterator[None]:
        """Mount `/api/v1` and `/ws` on `app`, with the API's connections open meanwhile."""
        redis = self._redis
        async with open_api_services(
            self.config, self.fanout, redis_latest=redis.latest if redis else None
        ) as services:
            mount_api(app, services, self._registry)
            yield
