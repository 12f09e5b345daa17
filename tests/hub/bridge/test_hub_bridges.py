"""Two hub instances with Kafka and Redis configured, fed over MQTT: the bridges end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import paho.mqtt.client as paho
from bridgetest import consume_all, kafka_config, pg_value, unique
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import wire
from hub.bridge.kafka import create_topics
from hub.bridge.redis import Latest
from hub.config import HubConfig, MqttConfig, RedisConfig
from hub.live import Subscriber
from hub.runtime import Hub
from hub.storage import PostgresStorage

MACHINES = 4
BATCHES = 40


@contextlib.asynccontextmanager
async def _hub(config: HubConfig) -> AsyncIterator[Hub]:
    hub = Hub(config, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        ready = asyncio.create_task(hub.wait_ready(30))
        done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            await task
        await ready
        yield hub
    finally:
        # Stopped here even when it never got ready: a hub left running is torn down by the
        # loop's cancel-all, its connections closed (or not) long after this test.
        stop.set()
        await task


async def _eventually(check: Any, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_two_hubs_feed_kafka_once_and_share_live_values(
    mosquitto: Any, kafka: Any, redis: Any, pg_dsn: str
) -> None:
    kcfg = kafka_config(kafka.bootstrap)
    await asyncio.to_thread(create_topics, kcfg)
    rcfg = RedisConfig(url=redis.url, channel=unique("ch"), key_prefix=unique("k") + ":")
    group = unique("g")

    def config() -> HubConfig:
        mqtt = MqttConfig(
            url=f"mqtt://{mosquitto.host}:{mosquitto.port}",
            client_id=unique("hub-"),
            share_group=group,
            session_expiry_s=300,
        )
        return HubConfig(mqtt=mqtt, storage=pg_dsn, flush_ms=20, kafka=kcfg, redis=rcfg)

    async with PostgresStorage(pg_dsn) as storage:
        await storage.migrate()
    site = unique("s")
    now = time.time_ns() // 1_000_000
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"),
                         protocol=MQTTProtocolVersion.MQTTv5)  # fmt: skip
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        async with _hub(config()) as hub_a, _hub(config()) as hub_b:
            assert hub_a.bridges.live is not None
            assert hub_b.bridges.live is not None
            # A WebSocket client of each instance, subscribed to every machine.
            clients = {"a": Subscriber(), "b": Subscriber()}
            for name, hub in (("a", hub_a), ("b", hub_b)):
                hub.api.fanout.add(clients[name])
                for m in range(MACHINES):
                    hub.api.fanout.subscribe(clients[name], f"{site}/l1/m{m}", None)
            seen: dict[str, set[str]] = {"a": set(), "b": set()}
            for live in (hub_a.bridges.live, hub_b.bridges.live):
                async with asyncio.timeout(30):
                    await live.subscribed.wait()

            for seq in range(BATCHES):
                m = seq % MACHINES
                t0 = now - 60_000 + (seq // MACHINES) * 100
                readings = [
                    wire.Reading(tag=tag, ts=t0 + i, v=float(seq * 100 + i)) for i in range(50)
                    for tag in ("a", "b")
                ]  # fmt: skip
                info = client.publish(
                    wire.telemetry_topic(site, "l1", f"m{m}"),
                    wire.encode_telemetry("pub", seq, readings),
                    qos=1,
                )
                await asyncio.to_thread(info.wait_for_publish, 10)
            total = BATCHES * 100

            async def stored() -> bool:
                return await pg_value(pg_dsn, "SELECT count(*) FROM readings") == total

            await _eventually(stored)

            async def drained() -> bool:
                return await pg_value(pg_dsn, "SELECT count(*) FROM kafka_outbox") == 0

            await _eventually(drained)
            states = sorted(h.bridge_health()["kafka"]["relay"] for h in (hub_a, hub_b))
            # One instance relays; the other stands by (PostgreSQL advisory lock).
            assert states[0] == "ok", states
            assert states[1].startswith("standby"), states

            # Redis latest = the last stored reading of every series, read on either instance.
            conn = await asyncpg.connect(pg_dsn)
            try:
                last = await conn.fetch(
                    "SELECT DISTINCT ON (s.id) s.machine, s.tag, r.ts, r.value FROM readings r"
                    " JOIN series s ON s.id = r.series_id ORDER BY s.id, r.ts DESC"
                )
            finally:
                await conn.close()
            assert len(last) == MACHINES * 2
            for row in last:
                got = await hub_b.bridges.live.latest(site, "l1", row["machine"])
                assert got[row["tag"]] == Latest(row["value"], row["ts"], "good")

            # Both instances' clients saw every machine, whichever instance received it.
            async def everyone_saw_everything() -> bool:
                for name, sub in clients.items():
                    seen[name] |= {json.loads(m)["machine"] for m in sub.buffer.take()}
                want = {f"{site}/l1/m{m}" for m in range(MACHINES)}
                return all(s >= want for s in seen.values())

            await _eventually(everyone_saw_everything)
    finally:
        client.disconnect()
        client.loop_stop()

    records = await asyncio.to_thread(consume_all, kafka.bootstrap, kcfg.telemetry_topic)
    assert len(records) == total
    assert (
        len({(r.key, json.loads(r.value)["tag"], json.loads(r.value)["ts"]) for r in records})
        == total
    )
