"""Exactly once across relay crashes: 100,000 readings, the relay SIGKILLed three times."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from bridgetest import (
    batch,
    consume_all,
    kafka_config,
    outbox_storage,
    pg_value,
    start_relay,
    unique,
    write,
)

from hub.bridge.kafka import create_topics

MACHINES = 10
BATCHES = 100
PER_BATCH = 1_000  # 2 tags × 500
TOTAL = BATCHES * PER_BATCH


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _active(log: Path, starts: int, timeout_s: float = 90.0) -> None:
    """Wait until the relay has logged `starts` times that it is active."""
    for _ in range(int(timeout_s / 0.05)):
        # One relay alone takes every shard, each start logging a line for each.
        if _text(log).count("kafka relay: shard 0 active") >= starts:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"relay start {starts} never became active:\n{_text(log)[-3000:]}")


async def _drained(dsn: str, timeout_s: float = 120.0) -> None:
    for _ in range(int(timeout_s / 0.2)):
        if await pg_value(dsn, "SELECT count(*) FROM kafka_outbox") == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("outbox not drained")


@pytest.mark.timeout(600)
async def test_read_committed_consumer_sees_every_reading_once_across_sigkills(
    kafka: Any, pg_dsn: str, tmp_path: Path
) -> None:
    # Small transactions, so a kill lands inside one more often than between two.
    cfg = kafka_config(kafka.bootstrap, batch_readings=2_000)
    await asyncio.to_thread(create_topics, cfg)
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump({"storage": pg_dsn, "kafka": cfg.model_dump(exclude_none=True)})
    )
    log = tmp_path / "relay.log"
    site = unique("s")
    t0 = time.time_ns() // 1_000_000 - 3_600_000
    rng = random.Random()

    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()

        async def ingest() -> None:
            for seq in range(BATCHES):
                m = seq % MACHINES
                start = t0 + (seq // MACHINES) * 500
                await write(storage, batch(site, f"m{m}", "ag", seq, start, 500, ("a", "b")))
                await asyncio.sleep(0.15)

        ingesting = asyncio.create_task(ingest())
        relay = start_relay(config, log)
        kills = 0
        try:
            for n in range(1, 4):
                # Kill only a relay that is relaying (start-up on a busy machine takes seconds),
                # at a random moment while ingest keeps the outbox busy.
                await _active(log, n)
                await asyncio.sleep(rng.uniform(0.1, 1.2))
                assert not ingesting.done(), "ingest finished before the kills"
                relay.send_signal(signal.SIGKILL)
                await asyncio.to_thread(relay.wait)
                kills += 1
                relay = start_relay(config, log)
            await ingesting
            await _drained(pg_dsn)
            relay.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(relay.wait, 30) == 0, log.read_text()[-3000:]
        finally:
            if relay.poll() is None:
                relay.kill()
                relay.wait()
    assert kills == 3

    records = await asyncio.to_thread(consume_all, kafka.bootstrap, cfg.telemetry_topic, 120)
    identities = set()
    order: dict[tuple[int, bytes, str], list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        v = json.loads(r.value)
        identities.add((v["site"], v["line"], v["machine"], v["tag"], v["ts"]))
        order.setdefault((r.partition, r.key, v["tag"]), []).append(v["ts"])
    # Records of transactions a kill aborted are in the log but never reach read_committed.
    raw = await asyncio.to_thread(
        consume_all, kafka.bootstrap, cfg.telemetry_topic, 120, "read_uncommitted"
    )
    print(f"records in the log: {len(raw)}, aborted by kills: {len(raw) - len(records)}")
    assert len(records) == TOTAL, log.read_text()[-3000:]
    assert len(identities) == TOTAL
    assert len({r.key for r in records}) == MACHINES
    # One machine's records, per tag, arrive in ts order within their partition.
    for ts in order.values():
        assert ts == sorted(ts)
