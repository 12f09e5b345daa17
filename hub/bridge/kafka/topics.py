"""Topic administration: `kafka init` creates the relay's topics; the relay checks them at start.

Blocking (confluent-kafka AdminClient): call from a thread when an event loop is running.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from hub.config import KafkaConfig
from hub.errors import KafkaTopicsMissing, KafkaUnavailable

__all__ = ["TopicSpec", "check_topics", "create_topics", "topic_specs"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic `kafka init` creates."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(cfg: KafkaConfig) -> list[TopicSpec]:
    """The topics of the bridge with their settings (pure)."""
    specs = [
        TopicSpec(
            cfg.telemetry_topic,
            cfg.partitions,
            {"retention.ms": str(cfg.retention_ms), "compression.type": "producer"},
        ),
        # One small partition, compacted: the last cursor per relay is all that matters, and it
        # is read from the start on every relay start.
        TopicSpec(
            cfg.state_topic,
            1,
            {
                "cleanup.policy": "compact",
                "segment.ms": str(3600 * 1000),
                "min.cleanable.dirty.ratio": "0.1",
            },
        ),
        TopicSpec(cfg.deadletter_topic, 1, {"retention.ms": str(cfg.retention_ms)}),
        # Alert transitions (docs/alerts.md), keyed by machine like telemetry.
        TopicSpec(cfg.alerts_topic, cfg.partitions, {"retention.ms": str(cfg.retention_ms)}),
        # Machine events (docs/events.md), keyed by machine like telemetry.
        TopicSpec(cfg.events_topic, cfg.partitions, {"retention.ms": str(cfg.retention_ms)}),
    ]
    if cfg.min_insync_replicas is not None:
        # Every topic: one relay transaction writes to several, and its commit needs them all.
        for spec in specs:
            spec.config["min.insync.replicas"] = str(cfg.min_insync_replicas)
    return specs


def _admin(cfg: KafkaConfig) -> AdminClient:
    return AdminClient(
        # log_level 2: failures reach us as exceptions; no reconnect log on stderr.
        {"bootstrap.servers": cfg.bootstrap, "socket.timeout.ms": 10_000, "log_level": 2}
    )


def _existing(admin: AdminClient, timeout_s: float) -> set[str]:
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot list Kafka topics: {exc}") from exc
    return set(meta.topics)


def create_topics(cfg: KafkaConfig, timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; return topic → 'created' or 'exists'."""
    admin = _admin(cfg)
    existing = _existing(admin, timeout_s)
    # -1: the cluster's default.replication.factor (Kafka ≥ 2.4, KIP-464).
    replication = cfg.replication_factor or -1
    wanted = [s for s in topic_specs(cfg) if s.name not in existing]
    outcome = {s.name: "exists" for s in topic_specs(cfg) if s.name in existing}
    if not wanted:
        return outcome
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, replication, config=s.config) for s in wanted],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                outcome[name] = "exists"
                continue
            raise KafkaUnavailable(f"could not create topic {name}: {exc}") from exc
        outcome[name] = "created"
    return outcome


def check_topics(cfg: KafkaConfig, timeout_s: float = 15.0) -> frozenset[str]:
    """Raise `KafkaTopicsMissing` unless the relay's topics exist; return which of the optional
    ones (dead letters, alerts, events) exist: rows for a missing one are skipped, not held up."""
    existing = _existing(_admin(cfg), timeout_s)
    missing = [t for t in (cfg.telemetry_topic, cfg.state_topic) if t not in existing]
    if missing:
        raise KafkaTopicsMissing(
            f"Kafka topics missing on {cfg.bootstrap}: {', '.join(missing)}; "
            "run `millstream-hub kafka init --config hub.yaml`"
        )
    optional = (cfg.deadletter_topic, cfg.alerts_topic, cfg.events_topic)
    return frozenset(t for t in optional if t in existing)
