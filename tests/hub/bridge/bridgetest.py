"""Helpers for bridge tests: unique Kafka names, a storage that writes the outbox, a consumer."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import wire
from hub.bridge.kafka import write_outbox
from hub.config import KafkaConfig
from hub.storage import PostgresStorage, TelemetryBatch, WriteBatch


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def kafka_config(bootstrap: str, **kw: object) -> KafkaConfig:
    """A bridge config with topics and a transactional id of the test's own."""
    name = unique("t")
    base: dict[str, object] = {
        "bootstrap": bootstrap,
        "transactional_id": f"relay-{name}",
        "telemetry_topic": f"{name}.telemetry",
        "state_topic": f"{name}.relay-state",
        "deadletter_topic": f"{name}.deadletter",
        "alerts_topic": f"{name}.alerts",
        "events_topic": f"{name}.events",
        "partitions": 3,
        "linger_ms": 5,
        "transaction_timeout_s": 20.0,
    }
    base.update(kw)
    return KafkaConfig.model_validate(base)


def batch(
    site: str, machine: str, src: str, seq: int, t0: int, n: int, tags: Sequence[str] = ("temp",)
) -> TelemetryBatch:
    """A batch of n readings per tag at t0, t0+1 … ms."""
    readings = [
        wire.Reading(tag=tag, ts=t0 + i, v=float(seq * 10_000 + i), q="good")
        for i in range(n)
        for tag in tags
    ]
    return TelemetryBatch(site, "l1", machine, src, seq, readings)


def outbox_storage(dsn: str) -> PostgresStorage:
    """PostgreSQL storage whose ingest transactions write the Kafka outbox."""
    return PostgresStorage(dsn, hooks=[write_outbox])


async def write(storage: PostgresStorage, *batches: TelemetryBatch) -> None:
    """Commit batches in one ingest transaction."""
    await storage.write(WriteBatch(telemetry=list(batches)))


async def pg_value(dsn: str, sql: str, *args: object) -> object:
    """One value from a fresh connection."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as a read_committed consumer saw it."""

    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]


def consume_all(
    bootstrap: str, topic: str, timeout_s: float = 60.0, isolation: str = "read_committed"
) -> list[Record]:
    """Every committed record of `topic`, from the beginning to the last stable offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("test-"),
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    out: list[Record] = []
    try:
        meta = consumer.list_topics(topic, timeout=30)
        partitions = list(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"consuming {topic} timed out"
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    pending.discard(msg.partition())
                    continue
                headers = dict(msg.headers() or [])
                out.append(
                    Record(msg.partition(), msg.offset(), msg.key(), msg.value(), headers)  # type: ignore[arg-type]
                )
    finally:
        consumer.close()
    return out


def start_relay(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`millstream-hub kafka-relay --config CONFIG` as a subprocess, its output added to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from hub.cli import main; main()", "kafka-relay",
             "--config", str(config)],
            stdout=out,
            stderr=out,
        )  # fmt: skip
