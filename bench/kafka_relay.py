"""Kafka relay throughput and end-to-end lag: PostgreSQL outbox → transactional relay → Kafka.

Starts a private PostgreSQL and Kafka (tests/harness), migrates, creates the topics, then:

1. throughput, for each count in `--relays` (e.g. 1 and 4): fills the outbox with `--readings`
   readings (1,000-reading batches of 50 machines, written by the real ingest transaction hook)
   while no relay runs, starts that many `millstream-hub kafka-relay` processes and times from
   the moment they hold every shard to an empty outbox (readings left then ÷ seconds);
2. lag: ingests `--rate` readings/s for `--seconds` with one relay running in this process and a
   read_committed consumer in a thread; lag per batch = its ingest commit returning → its first
   record consumed.

Relay CPU is the relay processes' CPU during the drain. PostgreSQL runs with its durability
defaults (fsync, synchronous_commit, full_page_writes on) unless `--no-durable`.

    .venv/bin/python bench/kafka_relay.py [--readings 500000] [--relays 1 4] [--rate 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire
from hub.bridge.kafka import KafkaRelay, create_topics, write_outbox
from hub.bridge.kafka.outbox import SHARD_CLASS
from hub.config import KafkaConfig
from hub.storage import PostgresStorage, TelemetryBatch, WriteBatch
from tests.harness import Kafka, Postgres

RESULTS = Path(__file__).parent / "results" / "kafka_relay.json"
PER_BATCH = 1_000
MACHINES = 50
TAGS = 20


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_batch(site: str, seq: int, t0: int) -> TelemetryBatch:
    """One machine's batch: 20 tags × 50 samples, distinct timestamps per machine."""
    m = seq % MACHINES
    start = t0 + (seq // MACHINES) * 50
    readings = [
        wire.Reading(tag=f"tag{t}", ts=start + i, v=float(seq + i), q="good")
        for i in range(PER_BATCH // TAGS)
        for t in range(TAGS)
    ]
    return TelemetryBatch(site, "line1", f"m{m}", "bench", seq, readings)


async def poll_until(check: Any, interval: float) -> None:
    for _ in range(int(120 / interval)):
        if check():
            return
        await asyncio.sleep(interval)
    raise TimeoutError("bench condition not reached in 120 s")


async def outbox_rows(storage: PostgresStorage) -> int:
    async with storage.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM kafka_outbox"))


async def fill(storage: PostgresStorage, readings: int, site: str) -> float:
    """Write `readings` into the outbox through the ingest hook; seconds it took."""
    t0 = now_ms() - 20 * 86_400_000
    batches = readings // PER_BATCH
    started = time.perf_counter()
    for i in range(0, batches, 20):
        await storage.write(
            WriteBatch(telemetry=[make_batch(site, s, t0) for s in range(i, min(i + 20, batches))])
        )
    return time.perf_counter() - started


def start_relays(config: Path, n: int) -> list[subprocess.Popen[bytes]]:
    """`n` `millstream-hub kafka-relay` processes on `config`."""
    argv = [sys.executable, "-c", "from hub.cli import main; main()", "kafka-relay"]
    return [
        subprocess.Popen(
            [*argv, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(n)
    ]


async def relay_processes(
    storage: PostgresStorage, cfg: KafkaConfig, dsn: str, readings: int, relays: int, run: int
) -> dict[str, Any]:
    """Drain a filled outbox with `relays` relay processes sharing its shards."""
    fill_s = await fill(storage, readings, f"bench{run}")
    config = Path(tempfile.mkdtemp()) / "hub.yaml"
    config.write_text(json.dumps({"storage": dsn, "kafka": cfg.model_dump(exclude_none=True)}))
    procs = start_relays(config, relays)
    try:
        async with storage.pool.acquire() as conn:
            shards = await conn.fetchval("SELECT shards FROM kafka_outbox_settings")

            async def held() -> bool:
                got = await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1"
                    " AND objsubid = 2 AND granted",
                    SHARD_CLASS,
                )
                return int(got) >= shards

            while not await held():  # noqa: ASYNC110 -- polling other processes' progress
                await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            left = int(await conn.fetchval("SELECT coalesce(sum(n), 0) FROM kafka_outbox"))
            cpu0 = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
            while await conn.fetchval("SELECT count(*) FROM kafka_outbox"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - t0
            cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs) - cpu0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    return {
        "relays": relays,
        "shards": shards,
        "readings": readings,
        "fill_seconds": round(fill_s, 2),
        "drained_readings": left,
        "drain_seconds": round(seconds, 2),
        "readings_per_s": round(left / seconds) if seconds else None,
        "relay_cpu_cores": round(cpu / seconds, 2) if seconds else None,
    }


def consume_times(cfg: KafkaConfig, stop: threading.Event, seen: dict[int, float]) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": cfg.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([cfg.telemetry_topic])
    try:
        while not stop.is_set():
            for msg in consumer.consume(10_000, 0.05):
                if msg.error() is not None:
                    continue
                seq = int(dict(msg.headers() or [])["seq"])
                seen.setdefault(seq, time.monotonic())
    finally:
        consumer.close()


async def lag(
    storage: PostgresStorage, cfg: KafkaConfig, dsn: str, rate: int, seconds: float
) -> dict[str, Any]:
    site = "bench2"
    t0 = now_ms() - 3_600_000
    seen: dict[int, float] = {}
    stop_consumer = threading.Event()
    consumer = threading.Thread(target=consume_times, args=(cfg, stop_consumer, seen))
    consumer.start()
    await asyncio.sleep(5)  # consumer group assignment
    relay = KafkaRelay(cfg, dsn)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    # Every shard taken (relays of the throughput phase may still be leaving): lag is measured
    # on a running relay, not on its start.
    await poll_until(lambda: len(relay.cursors) == 8, 0.01)
    committed: dict[int, float] = {}
    interval = PER_BATCH / rate
    start = time.monotonic()
    seq = 1_000_000
    while time.monotonic() - start < seconds:
        # Like the hub's flush: every tick commits what is due in one transaction, so a slow
        # commit is caught up instead of lowering the rate.
        await asyncio.sleep(0.05)
        due = int((time.monotonic() - start) / interval) + 1_000_000
        batches = [make_batch(site, s, t0) for s in range(seq, due)]
        if not batches:
            continue
        await storage.write(WriteBatch(telemetry=batches))
        done = time.monotonic()
        for s in range(seq, due):
            committed[s] = done
        seq = due
    for _ in range(200):
        if all(s in seen for s in committed):
            break
        await asyncio.sleep(0.05)
    stop_consumer.set()
    consumer.join()
    stop.set()
    await task
    lags = sorted((seen[s] - c) * 1000 for s, c in committed.items() if s in seen)
    achieved = len(committed) * PER_BATCH / (time.monotonic() - start)
    return {
        "target_readings_per_s": rate,
        "achieved_readings_per_s": round(achieved),
        "batches": len(committed),
        "batches_seen": len(lags),
        "commit_to_consumer_ms_p50": round(statistics.median(lags), 1),
        "commit_to_consumer_ms_p99": round(lags[max(0, int(len(lags) * 0.99) - 1)], 1),
        "commit_to_consumer_ms_max": round(lags[-1], 1),
    }


async def main(args: argparse.Namespace) -> None:
    with Postgres(durable=args.durable) as pg, Kafka() as kafka:
        dsn = pg.create_database("bench")
        cfg = KafkaConfig(
            bootstrap=kafka.bootstrap,
            partitions=6,
            transactional_id="bench-relay",
            batch_readings=args.batch_readings,
            linger_ms=args.linger_ms,
        )
        await asyncio.to_thread(create_topics, cfg)
        async with PostgresStorage(dsn, hooks=[write_outbox]) as storage:
            await storage.migrate()
            thr = []
            for run, relays in enumerate(args.relays):
                thr.append(await relay_processes(storage, cfg, dsn, args.readings, relays, run))
                print("throughput:", json.dumps(thr[-1]))
            lat = await lag(storage, cfg, dsn, args.rate, args.seconds)
            print("lag:", json.dumps(lat))
        result = {
            "bench": "kafka_relay",
            "throughput": thr,
            "lag": lat,
            "config": {
                "batch_readings": cfg.batch_readings,
                "linger_ms": cfg.linger_ms,
                "compression": cfg.compression,
                "partitions": cfg.partitions,
                "acks": "all",
                "idempotence": True,
            },
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "kafka": "single KRaft node (tests/harness), 512 MB heap",
                "postgresql": "durability defaults: fsync, synchronous_commit, full_page_writes on"
                if args.durable
                else "fsync=off (tests/harness)",
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(json.dumps(result, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-readings", type=int, default=50_000)
    parser.add_argument("--linger-ms", type=int, default=20)
    parser.add_argument("--relays", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    asyncio.run(main(parser.parse_args()))
