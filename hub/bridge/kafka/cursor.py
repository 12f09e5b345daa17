"""Read relay cursors back from the compacted relay-state topic (blocking): one per shard,
keyed by the shard's transactional id.

The consumer reads with `isolation.level=read_committed`: a cursor written by a transaction that
was aborted (or fenced when a relay was killed) is never seen, so the cursor read is exactly the
one committed together with the last committed records.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from hub.bridge.kafka.records import decode_cursor
from hub.errors import KafkaUnavailable

__all__ = ["read_cursor", "read_cursors"]


def read_cursor(bootstrap: str, topic: str, key: str, timeout_s: float = 30.0) -> tuple[int, int]:
    """The last committed cursor for `key` ((0, 0) if none); call after `init_transactions`."""
    return read_cursors(bootstrap, topic, [key], timeout_s)[key]


def read_cursors(
    bootstrap: str, topic: str, keys: list[str], timeout_s: float = 30.0
) -> dict[str, tuple[int, int]]:
    """The last committed cursor of each of `keys` ((0, 0) if none), in one read of the topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # assign() needs no group; librdkafka still wants an id. Nothing is committed.
            "group.id": f"millstream-relay-cursor-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            # EOF is reported at the last stable offset: everything committed has been read.
            "enable.partition.eof": True,
            "log_level": 2,  # failures reach us as errors; no reconnect log on stderr
        }
    )
    wanted = {key.encode(): key for key in keys}
    cursors: dict[str, tuple[int, int]] = dict.fromkeys(keys, (0, 0))
    deadline = time.monotonic() + timeout_s
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        partitions = meta.topics[topic].partitions
        if meta.topics[topic].error is not None or not partitions:
            raise KafkaUnavailable(f"relay-state topic {topic}: {meta.topics[topic].error}")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        while pending:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"reading the relay cursor from {topic} timed out")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise KafkaUnavailable(f"reading the relay cursor: {err}")
            key = wanted.get(msg.key() or b"")
            if key is not None:
                found = decode_cursor(msg.value())
                if found is not None:
                    cursors[key] = found
    except KafkaException as exc:
        raise KafkaUnavailable(f"reading the relay cursor: {exc}") from exc
    finally:
        consumer.close()
    return cursors
