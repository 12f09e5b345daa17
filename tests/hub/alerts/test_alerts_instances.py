"""Every committed reading is evaluated once, in time order per series, across hub instances:
two hubs share the MQTT subscription (so each machine's batches are split between them), the
evaluating one is stopped halfway and the other takes over; the alerts stored, and the records
on the Kafka alerts topic, are exactly those an engine computes from the readings themselves.
Real Mosquitto, PostgreSQL and Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import wire
from hub.alerts.engine import Engine
from hub.alerts.rules import AlertsConfig
from hub.bridge.kafka import create_topics
from hub.config import HubConfig, MqttConfig
from hub.runtime import Hub
from hub.storage import PostgresStorage
from tests.hub.bridge.bridgetest import consume_all, kafka_config, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

MACHINES = 3
BATCHES = 60  # per machine, 10 readings each of two tags
ALERTS = AlertsConfig.model_validate(
    {
        # The window within which batches committed out of order are put back in place: 300 ms
        # by default, wide here because a loaded CI machine has delayed a commit (and the
        # handover's redelivery) past 300 ms, and the engine then rightly takes the batch as
        # history — no longer the once-in-order evaluation this test asserts.
        "reorder": "3s",
        "notifiers": [{"name": "bus", "kind": "kafka"}],
        "rules": [
            {"name": "hot", "kind": "threshold", "match": {"tag": "temp"}, "above": 80,
             "hysteresis": 5, "severity": "critical", "notify": ["bus"]},
            {"name": "low-flow", "kind": "threshold", "match": {"tag": "flow"}, "below": 10,
             "notify": ["bus"]},
        ],
    }
)  # fmt: skip


@contextlib.asynccontextmanager
async def running(config: HubConfig) -> AsyncIterator[tuple[Hub, asyncio.Event]]:
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
        yield hub, stop
    finally:
        stop.set()
        await task


async def rows(dsn: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def eventually(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_two_instances_evaluate_every_reading_once_and_kafka_gets_each_transition_once(
    mosquitto: Any, kafka: Any, pg_dsn: str
) -> None:
    kcfg = kafka_config(kafka.bootstrap)
    await asyncio.to_thread(create_topics, kcfg)
    group = unique("g")

    def config() -> HubConfig:
        # retire_on_stop: the stopped instance leaves the share group instead of keeping a
        # session the broker would queue its share of the batches for.
        mqtt = MqttConfig(url=mosquitto.url, client_id=unique("hub-"), share_group=group,
                          session_expiry_s=300, retire_on_stop=True)  # fmt: skip
        return HubConfig(mqtt=mqtt, storage=pg_dsn, flush_ms=20, kafka=kcfg, alerts=ALERTS)

    async with PostgresStorage(pg_dsn) as storage:
        await storage.migrate()
    site = unique("s")
    rng = random.Random(5)
    # Values that cross the limits often, including inside the hysteresis band.
    sent: dict[str, list[tuple[str, int, float, str]]] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"),
                         protocol=MQTTProtocolVersion.MQTTv5)  # fmt: skip
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    t0 = time.time_ns() // 1_000_000

    async def publish(first: int, last: int) -> None:
        for seq in range(first, last):
            for m in range(MACHINES):
                machine = f"m{m}"
                readings = []
                for i in range(10):
                    ts = t0 + seq * 100 + i * 10
                    temp = 70 + 20 * rng.random()
                    flow = 5 + 20 * rng.random()
                    readings += [wire.Reading(tag="temp", ts=ts, v=round(temp, 2)),
                                 wire.Reading(tag="flow", ts=ts, v=round(flow, 2))]  # fmt: skip
                    sent.setdefault(machine, []).extend(
                        [("temp", ts, round(temp, 2), "good"), ("flow", ts, round(flow, 2), "good")]
                    )
                info = client.publish(
                    wire.telemetry_topic(site, "l1", machine),
                    wire.encode_telemetry(f"pub-{machine}", seq, readings),
                    qos=1,
                )
                await asyncio.to_thread(info.wait_for_publish, 10)
            await asyncio.sleep(0.02)

    try:
        async with contextlib.AsyncExitStack() as stack:
            hub_a, stop_a = await stack.enter_async_context(running(config()))
            hub_b, stop_b = await stack.enter_async_context(running(config()))
            await publish(0, BATCHES // 2)
            # Whichever evaluates is stopped now; the other takes over from its checkpoint.
            states = {h.bridge_health()["alerts"]["evaluator"] for h in (hub_a, hub_b)}
            assert "ok" in states
            assert any(s.startswith("standby") for s in states), states
            if hub_a.bridge_health()["alerts"]["evaluator"] == "ok":
                stop_a.set()
            else:
                stop_b.set()
            await publish(BATCHES // 2, BATCHES)
            total = BATCHES * MACHINES * 20

            async def stored() -> bool:
                got = await rows(pg_dsn, "SELECT count(*) FROM readings")
                return bool(got[0][0] == total)

            await eventually(stored)

            async def evaluated() -> bool:
                return not await rows(pg_dsn, "SELECT 1 FROM alert_feed LIMIT 1") and not (
                    await rows(pg_dsn, "SELECT 1 FROM alert_notifications LIMIT 1")
                )

            await eventually(evaluated)
    finally:
        client.disconnect()
        client.loop_stop()

    truth = Engine(ALERTS.rules)
    expected: set[tuple[str, str]] = set()
    for machine, readings in sent.items():
        for t in truth.readings(site, "l1", machine, sorted(readings, key=lambda r: r[1]), t0):
            expected.add((t.alert_id, t.state))
    assert len(expected) > 20  # the data does cross the limits, many times
    stored_transitions = {
        (str(r[0]), r[1])
        for r in await rows(pg_dsn, "SELECT alert_id, state FROM alert_transitions")
    }
    assert stored_transitions == expected
    late = await rows(pg_dsn, "SELECT count(*) FROM alerts WHERE found_late")
    assert late[0][0] == 0

    records = await asyncio.to_thread(consume_all, kafka.bootstrap, kcfg.alerts_topic)
    bodies = [json.loads(r.value) for r in records]
    assert sorted((b["id"], b["state"]) for b in bodies) == sorted(expected)
    for record, body in zip(records, bodies, strict=True):
        assert record.key == f"{site}/l1/{body['machine']}".encode()
