"""Live updates through Redis pub/sub: what one hub instance commits reaches another's clients."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from apitest import SECRET, unique
from prometheus_client import CollectorRegistry

import wire
from hub.api.v1.wiring import ApiWiring
from hub.bridge.redis import RedisLive
from hub.config import HubConfig, RedisConfig
from hub.live import Subscriber
from hub.storage import TelemetryBatch

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_updates_from_another_instance_reach_local_subscribers(redis: Any) -> None:
    cfg = RedisConfig(url=f"redis://{redis.host}:{redis.port}/0", channel=unique("live-"))
    config = HubConfig(jwt_secret=SECRET, redis=cfg)
    writer, reader = RedisLive(cfg), RedisLive(cfg)  # two hub instances
    wiring_w = ApiWiring(config, CollectorRegistry(), writer)
    wiring_r = ApiWiring(config, CollectorRegistry(), reader)
    sub = Subscriber()
    wiring_r.fanout.add(sub)
    wiring_r.fanout.subscribe(sub, "s/l1/m1", None)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(writer.run(stop)),
        asyncio.create_task(reader.run(stop)),
        asyncio.create_task(wiring_r.run(stop)),
    ]
    try:
        async with asyncio.timeout(10):
            await reader.subscribed.wait()
        readings = [wire.Reading(tag="temp", ts=1_799_990_000_000, v=21.5, q="good")]
        batch = TelemetryBatch("s", "l1", "m1", "src", 1, readings)
        wiring_w.on_validated([batch])  # with Redis, nothing is delivered locally...
        writer.publish([batch])  # ...the bridge publishes it (the runtime calls both)
        async with asyncio.timeout(10):
            await sub.ready.wait()
        [message] = sub.buffer.take()
        assert message == (
            '{"type":"readings","machine":"s/l1/m1",'
            '"readings":[{"tag":"temp","ts":1799990000000,"v":21.5,"q":"good"}]}'
        )
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
