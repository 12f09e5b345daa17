"""`Bridges`: the Kafka and Redis bridges a hub runs, built from its config (absent ⇒ off)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from hub.bridge.kafka import KafkaRelay, write_outbox
from hub.bridge.metrics import BridgeMetrics
from hub.bridge.redis import RedisLive
from hub.config import HubConfig
from hub.storage import TelemetryBatch, TransactionHook
from millstream_common.tracing import Tracer

__all__ = ["Bridges"]


class Bridges:
    """What the runtime wires: the outbox hook, the commit callback, the tasks, health detail."""

    def __init__(
        self,
        cfg: HubConfig,
        registry: CollectorRegistry | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.metrics = BridgeMetrics(registry)
        self.relay = (
            KafkaRelay(cfg.kafka, cfg.storage, metrics=self.metrics, tracer=tracer)
            if cfg.kafka
            else None
        )
        self._relay_in_process = cfg.kafka is not None and cfg.kafka.relay_in_process
        if self.relay is not None and not self._relay_in_process:
            self.relay.state = "not in this process (millstream-hub kafka-relay runs it)"
        self.live = RedisLive(cfg.redis, self.metrics) if cfg.redis else None

    @property
    def hooks(self) -> list[TransactionHook]:
        """Storage transaction hooks: the outbox insert when Kafka is configured."""
        return [write_outbox] if self.relay is not None else []

    def on_committed(self, batches: Sequence[TelemetryBatch]) -> None:
        """Called as batches commit: feed Redis (never blocks)."""
        if self.live is not None:
            self.live.publish(batches)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the relay (if in-process), the outbox lag probe and the Redis shell until `stop`."""
        async with asyncio.TaskGroup() as tg:
            if self.relay is not None:
                if self._relay_in_process:
                    tg.create_task(self.relay.run(stop), name="kafka-relay")
                tg.create_task(self.relay.watch_lag(stop), name="outbox-lag")
            if self.live is not None:
                tg.create_task(self.live.run(stop), name="redis-live")

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready` (bridges never make the hub unready: ingest carries on)."""
        out: dict[str, Any] = {}
        if self.relay is not None:
            out["kafka"] = self.relay.health()
        if self.live is not None:
            out["redis"] = self.live.health()
        return out
