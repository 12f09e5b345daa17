"""Live updates through Redis pub/sub: what one hub instance validates reaches another's clients,
the same message its own clients get."""

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
    sub, local = Subscriber(), Subscriber()
    wiring_r.fanout.add(sub)
    wiring_r.fanout.subscribe(sub, "s/l1/m1", None)
    wiring_w.fanout.add(local)
    wiring_w.fanout.subscribe(local, "s/l1/m1", None)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(writer.run(stop)),
        asyncio.create_task(reader.run(stop)),
        asyncio.create_task(wiring_r.run(stop)),
    ]
    try:
        async with asyncio.timeout(10):
            await reader.subscribed.wait()
        readings = [
            wire.Reading(tag="temp", ts=1_799_990_000_000, v=21.5, q="good"),
            wire.Reading(tag="temp", ts=1_799_990_000_100, v=21.7, q="good"),
        ]
        batch = TelemetryBatch("s", "l1", "m1", "src", 1, readings)
        wiring_w.on_validated([batch])  # the writer's own clients get it at once...
        [mine] = local.buffer.take()
        async with asyncio.timeout(10):
            await sub.ready.wait()
        [theirs] = sub.buffer.take()  # ...and the other instance's the same, every reading
        assert (
            mine
            == theirs
            == (
                '{"type":"readings","machine":"s/l1/m1","readings":['
                '{"tag":"temp","ts":1799990000000,"v":21.5,"q":"good"},'
                '{"tag":"temp","ts":1799990000100,"v":21.7,"q":"good"}]}'
            )
        )
        # A client subscribing now starts from the newest reading on either instance.
        assert wiring_r.fanout.newest("s/l1/m1") == wiring_w.fanout.newest("s/l1/m1")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
