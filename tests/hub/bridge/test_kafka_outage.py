"""Kafka stopped for 60 s during ingest: PostgreSQL keeps storing, the outbox grows, then drains."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest
from bridgetest import batch, consume_all, kafka_config, outbox_storage, pg_value, unique, write

from hub.bridge.kafka import KafkaRelay, create_topics

OUTAGE_S = 60.0


async def _stored(dsn: str) -> int:
    return int(await pg_value(dsn, "SELECT count(*) FROM readings"))  # type: ignore[call-overload]


@pytest.mark.timeout(600)
async def test_kafka_outage_ingest_carries_on_and_backlog_drains(
    kafka_factory: Any, pg_dsn: str
) -> None:
    broker = kafka_factory()
    cfg = kafka_config(broker.bootstrap, transaction_timeout_s=10.0)
    await asyncio.to_thread(create_topics, cfg)
    site = unique("s")
    t0 = time.time_ns() // 1_000_000 - 3_600_000
    stop = asyncio.Event()
    relay = KafkaRelay(cfg, pg_dsn)

    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()
        done_ingesting = asyncio.Event()

        async def ingest() -> None:
            seq = 0
            while not done_ingesting.is_set():
                await write(storage, batch(site, f"m{seq % 4}", "ag", seq, t0 + seq * 100, 100))
                seq += 1
                await asyncio.sleep(0.05)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(relay.run(stop))
            tg.create_task(relay.watch_lag(stop))
            ingesting = tg.create_task(ingest())
            for _ in range(300):
                if any(c > (0, 0) for c in relay.cursors.values()):
                    break
                await asyncio.sleep(0.1)
            assert any(c > (0, 0) for c in relay.cursors.values()), relay.state

            await asyncio.to_thread(broker.stop)
            down_at = asyncio.get_running_loop().time()
            before = await _stored(pg_dsn)
            samples = [before]
            while asyncio.get_running_loop().time() - down_at < OUTAGE_S:
                await asyncio.sleep(10)
                samples.append(await _stored(pg_dsn))
            # PostgreSQL kept storing all along, and what it stored waits in the outbox.
            assert all(b > a for a, b in itertools.pairwise(samples)), samples
            health = relay.health()
            assert health["relay"].startswith("unavailable"), health
            assert health["outbox_rows"] > 0, health
            assert relay.metrics.outbox_rows._value.get() > 0
            assert relay.metrics.relay_up._value.get() == 0

            await asyncio.to_thread(broker.start)
            await asyncio.sleep(2)
            done_ingesting.set()
            await ingesting
            for _ in range(1800):
                if await pg_value(pg_dsn, "SELECT count(*) FROM kafka_outbox") == 0:
                    break
                await asyncio.sleep(0.1)
            stop.set()

    stored = await _stored(pg_dsn)
    records = await asyncio.to_thread(consume_all, broker.bootstrap, cfg.telemetry_topic, 120)
    identities = {(json.loads(r.value)["machine"], json.loads(r.value)["ts"]) for r in records}
    assert len(records) == stored
    assert len(identities) == stored
