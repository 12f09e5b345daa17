"""Kafka bridge: the outbox written in the ingest transaction and the exactly-once relay.

records.py  outbox bodies and Kafka record values (pure)
outbox.py   the storage transaction hook, sharded outbox reads, pruning and lag (PostgreSQL)
topics.py   `kafka init` and the relay's start-up check (AdminClient)
cursor.py   the relay cursor read back with read_committed
relay.py    the transactional relays, one shard at a time each
"""

from hub.bridge.kafka.cursor import read_cursor, read_cursors
from hub.bridge.kafka.outbox import OutboxLag, outbox_lag, write_outbox
from hub.bridge.kafka.relay import KafkaRelay, producer_config
from hub.bridge.kafka.topics import check_topics, create_topics, topic_specs

__all__ = [
    "KafkaRelay",
    "OutboxLag",
    "check_topics",
    "create_topics",
    "outbox_lag",
    "producer_config",
    "read_cursor",
    "read_cursors",
    "topic_specs",
    "write_outbox",
]
