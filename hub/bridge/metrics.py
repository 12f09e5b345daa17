"""Prometheus metrics of the Kafka and Redis bridges, registered into the hub's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["BridgeMetrics"]


class BridgeMetrics:
    """Outbox lag, relay progress and Redis state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.outbox_rows = Gauge(
            "millstream_kafka_outbox_rows", "Outbox rows (batches) not yet in Kafka.", registry=r
        )
        self.outbox_readings = Gauge(
            "millstream_kafka_outbox_readings", "Readings waiting in the outbox.", registry=r
        )
        self.outbox_age = Gauge(
            "millstream_kafka_outbox_oldest_age_seconds",
            "Age of the oldest outbox row (0 when empty): the relay's lag.",
            registry=r,
        )
        self.relay_up = Gauge(
            "millstream_kafka_relay_up",
            "1 while this process is the active relay and its last Kafka transaction committed.",
            registry=r,
        )
        self.relayed = Counter(
            "millstream_kafka_records",
            "Records committed to Kafka by this relay.",
            ["topic"],
            registry=r,
        )
        self.transactions = Counter(
            "millstream_kafka_transactions", "Kafka transactions committed.", registry=r
        )
        self.relay_errors = Counter(
            "millstream_kafka_relay_errors",
            "Relay sessions that failed (Kafka or PostgreSQL unavailable); retried.",
            registry=r,
        )
        self.redis_up = Gauge(
            "millstream_redis_up", "1 while the latest-value writer reaches Redis.", registry=r
        )
        self.redis_errors = Counter(
            "millstream_redis_errors", "Failed Redis writes or subscriptions; retried.", registry=r
        )
        self.redis_live_messages = Counter(
            "millstream_redis_live_messages",
            "Live updates (one machine's readings each) this instance published to Redis pub/sub"
            " or received from it (own ones included), by direction.",
            ["direction"],
            registry=r,
        )
        self.redis_live_channels = Gauge(
            "millstream_redis_live_channels",
            "Per-site live channels this instance is subscribed to (sites its clients watch).",
            registry=r,
        )
