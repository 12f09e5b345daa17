"""Machine events reach Kafka's events topic once each (docs/events.md, docs/kafka.md): a batch
stored again adds nothing, a batch repeating an event adds only its new one — real PostgreSQL
outbox, real relay, real Kafka."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bridgetest import consume_all, kafka_config, outbox_storage, pg_value, unique

from hub.bridge.kafka import KafkaRelay, create_topics
from hub.storage import EventBatch, EventRow, WriteBatch


async def test_each_stored_event_reaches_kafka_once(kafka: Any, pg_dsn: str) -> None:
    cfg = kafka_config(kafka.bootstrap)
    await asyncio.to_thread(create_topics, cfg)
    site = unique("s")
    t0 = time.time_ns() // 1_000_000 - 60_000

    def event(event_id: str, ts: int, state: str) -> EventRow:
        return EventRow(event_id, ts, "guard_door", "alarm", 700, "Guard door", state, '{"d":1}')

    raised = EventBatch(site, "l1", "press-01", "gw", 1,
                        [event("a", t0, "active"), event("a", t0 + 5, "cleared")])  # fmt: skip
    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()
        await storage.write(WriteBatch(events=[raised]))
        await storage.write(WriteBatch(events=[raised]))  # sent again: nothing new
        repeated = [event("a", t0 + 5, "cleared"), event("b", t0 + 9, "active")]
        mixed = EventBatch(site, "l1", "press-01", "gw", 2, repeated)
        await storage.write(WriteBatch(events=[mixed]))
        stop = asyncio.Event()
        task = asyncio.create_task(KafkaRelay(cfg, pg_dsn).run(stop))
        for _ in range(600):
            if await pg_value(pg_dsn, "SELECT count(*) FROM kafka_outbox") == 0:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task

    records = await asyncio.to_thread(consume_all, kafka.bootstrap, cfg.events_topic)
    bodies = sorted((json.loads(r.value) for r in records), key=lambda b: b["ts"])
    assert [(b["id"], b["ts"], b["state"], b["seq"]) for b in bodies] == [
        ("a", t0, "active", 1), ("a", t0 + 5, "cleared", 1), ("b", t0 + 9, "active", 2),
    ]  # fmt: skip
    assert {r.key for r in records} == {f"{site}/l1/press-01".encode()}
    assert bodies[0]["fields"] == {"d": 1}
    assert bodies[0]["severity"] == 700
    # Telemetry's topic holds none of them.
    assert await asyncio.to_thread(consume_all, kafka.bootstrap, cfg.telemetry_topic) == []
