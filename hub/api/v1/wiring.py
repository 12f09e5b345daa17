"""What the hub runtime adds for the API: the live fan-out fed from validated telemetry — this
instance's, and with Redis the other instances' too, announced over pub/sub, so a WebSocket
client gets the same updates whichever instance it is connected to — and `/api/v1` + `/ws`
mounted on its HTTP app for as long as the hub serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from hub.alerts.live import relay_alert_changes
from hub.api.v1.app import mount_api
from hub.api.v1.services import open_api_services
from hub.bridge.redis import RedisLive
from hub.config import HubConfig
from hub.live import Fanout
from hub.storage import CompactReading, TelemetryBatch

__all__ = ["ApiWiring"]


class ApiWiring:
    """Owned by `Hub`: `on_validated` from the ingest, `run` as a task, `mounted(app)`."""

    def __init__(
        self, config: HubConfig, registry: CollectorRegistry, redis: RedisLive | None
    ) -> None:
        self.config = config
        # With Redis, the instance receives other instances' updates of the sites its clients
        # watch, and only those.
        self.fanout = Fanout(on_sites=redis.watch if redis is not None else None)
        self._registry = registry
        self._redis = redis

    def on_validated(self, batches: Sequence[TelemetryBatch]) -> None:
        """Ingest hook: hand validated batches to local WebSocket clients, and with Redis to the
        other instances' clients: the same readings, at the same moment, either way."""
        self.fanout.publish(batches)
        if self._redis is not None:
            self._redis.announce(batches)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay Redis pub/sub updates and alert changes to local clients until `stop`."""
        async with asyncio.TaskGroup() as tg:
            if urlsplit(self.config.storage).scheme.startswith("postgres"):
                tg.create_task(relay_alert_changes(self.config.storage, self.fanout, stop))
            tg.create_task(self._relay_redis(stop))

    async def _relay_redis(self, stop: asyncio.Event) -> None:
        if self._redis is None:
            await stop.wait()
            return
        async for update in self._redis.subscribe_updates():
            site, line, machine = update.parts
            readings = [CompactReading(tag, ts, v, q) for tag, ts, v, q in update.readings]
            self.fanout.publish([TelemetryBatch(site, line, machine, update.origin, 0, readings)])
            if stop.is_set():
                return

    @asynccontextmanager
    async def mounted(
        self, app: FastAPI, *, publish: Callable[[str, bytes], object] | None = None
    ) -> AsyncIterator[None]:
        """Mount `/api/v1` and `/ws` on `app`, with the API's connections open meanwhile;
        `publish` sends on the hub's broker session (commands to agents)."""
        redis = self._redis
        async with open_api_services(
            self.config,
            self.fanout,
            redis_latest=redis.latest if redis else None,
            publish=publish,
        ) as services:
            mount_api(app, services, self._registry)
            yield
