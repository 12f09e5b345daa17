"""The hub's Prometheus metrics: one registry per hub instance (tests run several in-process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["HubMetrics"]


class HubMetrics:
    """Every metric the hub exports on `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "millstream_ingest_messages",
            "MQTT messages committed, by kind (telemetry, machine/agent status, dead_letter).",
            ["kind"],
            registry=r,
        )
        self.readings = Counter(
            "millstream_ingest_readings",
            "Readings committed: inserted, or duplicate (already stored, a replay).",
            ["result"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "millstream_commit_seconds",
            "Time to commit one ingest transaction.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_messages = Histogram(
            "millstream_commit_messages",
            "MQTT messages per ingest transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.dead_letters = Counter(
            "millstream_dead_letters",
            "Messages refused and stored as dead letters, by reason.",
            ["reason"],
            registry=r,
        )
        self.backlog = Gauge(
            "millstream_ingest_backlog_messages",
            "Messages received but not yet committed and acknowledged (the in-memory window).",
            registry=r,
        )
        self.storage_up = Gauge(
            "millstream_storage_up", "1 when the last storage operation succeeded.", registry=r
        )
        self.storage_errors = Counter(
            "millstream_storage_errors", "Failed commit attempts (retried).", registry=r
        )
        self.mqtt_connected = Gauge(
            "millstream_mqtt_connected", "1 while the broker connection is up.", registry=r
        )
        self.receipts = Counter(
            "millstream_receipts_published", "Receipts published to publishers.", registry=r
        )
