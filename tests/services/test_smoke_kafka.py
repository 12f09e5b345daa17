"""Kafka through confluent-kafka: transactions, and what a read_committed consumer sees."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.harness import Kafka

pytestmark = pytest.mark.services

WAIT = 30.0  # seconds; the first transaction also creates __transaction_state


def _create_topic(kafka: Kafka) -> str:
    topic = f"ms.smoke.{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=WAIT)
    return topic


def _transaction(producer: Producer, topic: str, values: list[str], *, commit: bool) -> None:
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, key=b"smoke/line1/m1", value=value.encode())
    if commit:
        producer.commit_transaction(WAIT)
    else:
        producer.flush(WAIT)  # the aborted records really reach the log before the abort marker
        producer.abort_transaction(WAIT)


def _read_until(kafka: Kafka, topic: str, isolation: str, last: str) -> list[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[str] = []
    deadline = time.monotonic() + WAIT
    try:
        while last not in seen:
            assert time.monotonic() < deadline, f"{last!r} not consumed; saw {seen}"
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            value = msg.value()
            assert value is not None
            seen.append(value.decode())
    finally:
        consumer.close()
    return seen


def test_read_committed_sees_committed_transactions_only(kafka: Kafka) -> None:
    topic = _create_topic(kafka)
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "transactional.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "acks": "all",
        }
    )
    producer.init_transactions(WAIT)

    _transaction(producer, topic, ["c0", "c1", "c2"], commit=True)
    _transaction(producer, topic, ["a0", "a1"], commit=False)
    _transaction(producer, topic, ["last"], commit=True)

    assert _read_until(kafka, topic, "read_committed", "last") == ["c0", "c1", "c2", "last"]
    # The aborted records are in the log: read_committed filtered them, they were not lost.
    uncommitted = _read_until(kafka, topic, "read_uncommitted", "last")
    assert uncommitted == ["c0", "c1", "c2", "a0", "a1", "last"]
