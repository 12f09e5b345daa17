"""Helpers for ingest tests: unique names, an MQTT test client, an in-process hub, DB probes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import wire
from hub.config import HubConfig, MqttConfig
from hub.runtime import Hub
from hub.storage import open_storage


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same broker) uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    """The wall clock in epoch ms, as readings carry it."""
    return time.time_ns() // 1_000_000


def telemetry(src: str, seq: int, t0: int, n: int, tag: str = "temp") -> bytes:
    """An encoded valid batch of n readings at t0, t0+1 … ms."""
    readings = [wire.Reading(tag=tag, ts=t0 + i, v=float(i), q="good") for i in range(n)]
    return wire.encode_telemetry(src, seq, readings)


class MqttTestClient:
    """A plain paho client: publishes QoS 1 (waits for PUBACK) and records receipts."""

    def __init__(self, host: str, port: int) -> None:
        self.receipts: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=unique("test-"),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        src = msg.topic.rsplit("/", 1)[-1]
        ranges = [tuple(r) for r in json.loads(msg.payload)["seqs"]]
        with self._lock:
            self.receipts.setdefault(src, []).extend(ranges)  # type: ignore[arg-type]

    def receipted(self, src: str) -> set[int]:
        with self._lock:
            return {s for a, b in self.receipts.get(src, []) for s in range(a, b + 1)}

    def subscribe_receipts(self, src: str) -> None:
        info = self._client.subscribe(wire.receipt_topic(src), qos=1)
        assert info[0] == 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    async def apublish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> None:
        await asyncio.to_thread(self.publish, topic, payload, qos, retain)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def hub_config(mqtt_url: str, storage: str, **kw: Any) -> HubConfig:
    """A config with its own session and share group, so tests never share a broker session."""
    mqtt = MqttConfig(
        url=mqtt_url,
        client_id=kw.pop("client_id", unique("hub-")),
        share_group=kw.pop("share_group", unique("g")),
        session_expiry_s=300,
        receive_maximum=kw.pop("receive_maximum", 256),
    )
    return HubConfig(mqtt=mqtt, storage=storage, flush_ms=kw.pop("flush_ms", 20), **kw)


async def migrate(url: str) -> None:
    async with open_storage(url) as storage:
        await storage.migrate()


@asynccontextmanager
async def running_hub(config: HubConfig, parse_workers: int | None = None) -> AsyncIterator[Hub]:
    """An in-process hub, ready (subscribed) when the block starts, drained when it ends."""
    hub = Hub(config, serve_http=False, parse_workers=parse_workers)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop), name="hub-under-test")
    ready = asyncio.create_task(hub.wait_ready(30))
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        await task  # raises the hub's error
    await ready
    try:
        yield hub
    finally:
        stop.set()
        await task


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll `check` until it is true; fail after timeout_s (a liveness bound, not a measure)."""
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def pg_fetch(dsn: str, sql: str, *args: Any) -> Sequence[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def count_readings(dsn: str, site: str) -> int:
    rows = await pg_fetch(
        dsn,
        "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id WHERE s.site = $1",
        site,
    )
    return int(rows[0][0])
