"""The relay against real Kafka and PostgreSQL: records, order, restarts, topic checks."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import pytest
from bridgetest import batch, consume_all, kafka_config, outbox_storage, pg_value, unique, write

from hub.bridge.kafka import KafkaRelay, check_topics, create_topics, read_cursors
from hub.bridge.kafka.relay import shard_id
from hub.errors import KafkaTopicsMissing
from hub.storage import DeadLetter, WriteBatch


async def _drained(dsn: str, timeout_s: float = 60.0) -> None:
    """Wait until the outbox is empty (every row's records are committed to Kafka)."""
    for _ in range(int(timeout_s / 0.1)):
        if await pg_value(dsn, "SELECT count(*) FROM kafka_outbox") == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("outbox not drained")


def _by_machine_in_ts_order(records: list[Any]) -> dict[bytes, list[int]]:
    seen: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        seen[(r.partition, r.key)].append(json.loads(r.value)["ts"])
    return {key: ts for (_, key), ts in seen.items()}


async def test_relay_records_headers_order_dead_letters_and_resume(kafka: Any, pg_dsn: str) -> None:
    cfg = kafka_config(kafka.bootstrap)
    with pytest.raises(KafkaTopicsMissing, match="kafka init"):
        await asyncio.to_thread(check_topics, cfg)
    made = await asyncio.to_thread(create_topics, cfg)
    assert set(made.values()) == {"created"}
    assert set((await asyncio.to_thread(create_topics, cfg)).values()) == {"exists"}

    site = unique("s")
    t0 = time.time_ns() // 1_000_000 - 600_000
    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()
        for seq in range(1, 6):
            await write(storage, batch(site, "m1", "ag", seq, t0 + seq * 100, 100, ("a", "b")))
        await storage.write(
            WriteBatch(dead_letters=[DeadLetter("ms/v1/a/b/c/telemetry", b"{", "bad_json", "x", 1)])
        )
        stop = asyncio.Event()
        relay = KafkaRelay(cfg, pg_dsn)
        task = asyncio.create_task(relay.run(stop))
        await _drained(pg_dsn)
        # More while it runs, including a replay that must not reach Kafka again.
        await write(storage, batch(site, "m2", "ag", 6, t0, 10))
        await write(storage, batch(site, "m1", "ag", 1, t0 + 100, 100, ("a", "b")))
        await _drained(pg_dsn)
        stop.set()
        await task
        assert relay.health()["relay"] == "ok"

    records = await asyncio.to_thread(consume_all, kafka.bootstrap, cfg.telemetry_topic)
    assert len(records) == 5 * 200 + 10
    first = json.loads(records[0].value)
    assert set(first) == {"site", "line", "machine", "tag", "ts", "v", "q"}
    assert {r.key for r in records} == {f"{site}/l1/m1".encode(), f"{site}/l1/m2".encode()}
    assert {r.headers["src"] for r in records} == {b"ag"}
    assert {r.headers["seq"] for r in records} == {str(s).encode() for s in range(1, 7)}
    for ts in _by_machine_in_ts_order(records).values():
        assert ts == sorted(ts)
    dead = await asyncio.to_thread(consume_all, kafka.bootstrap, cfg.deadletter_topic)
    assert [json.loads(d.value)["reason"] for d in dead] == ["bad_json"]
    # Each shard's cursor is (xid, id) of its last row: the newest of them is row 7 — 6 telemetry
    # rows and a dead letter; the replay added none.
    keys = [shard_id(cfg, shard) for shard in range(8)]
    cursors = await asyncio.to_thread(read_cursors, kafka.bootstrap, cfg.state_topic, keys)
    assert max(c[1] for c in cursors.values()) == 7, cursors
