"""Exactly once on a real cluster: three KRaft nodes, replication 3, min.insync.replicas 2, and the
node that coordinates the relay's transactions SIGKILLed while 100,000 readings are ingested."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from bridgetest import batch, consume_all, kafka_config, outbox_storage, start_relay, unique, write
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from hub.bridge.kafka import create_topics
from hub.config import KafkaConfig
from tests.harness.kafka import KafkaCluster

MACHINES = 10
BATCHES = 100
PER_BATCH = 1_000  # 2 tags × 500
TOTAL = BATCHES * PER_BATCH
RELAYING = 20  # batches ingested before ingest waits for the relay to be relaying
KILL_AFTER = 30  # batches ingested when the node is killed
RIDE_OUT = 5  # batches ingested after the kill that must reach Kafka while the node is down


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


def _relay_lines(log: Path) -> list[str]:
    """The relay's own log lines (JSON), as `ts msg`."""
    lines = []
    for line in _text(log).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "kafka relay" in str(entry.get("msg")):
            lines.append(f"{entry.get('ts')} {entry['msg']}")
    return lines


def _topic_layout(cfg: KafkaConfig) -> dict[str, tuple[set[int], str]]:
    """topic → (replica counts of its partitions, its min.insync.replicas)."""
    admin = AdminClient({"bootstrap.servers": cfg.bootstrap})
    topics = [cfg.telemetry_topic, cfg.state_topic]
    for _ in range(300):  # until every broker's metadata has the new topics
        meta = admin.list_topics(timeout=30)
        if all(t in meta.topics and meta.topics[t].partitions for t in topics):
            break
        time.sleep(0.1)
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    out = {}
    for resource, future in admin.describe_configs(resources).items():
        entries = future.result(timeout=30)
        replicas = {len(p.replicas) for p in meta.topics[resource.name].partitions.values()}
        out[resource.name] = (replicas, entries["min.insync.replicas"].value)
    return out


def _leaders(cluster: KafkaCluster, topic: str) -> dict[int, int]:
    """partition → node id of its leader."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    meta = admin.list_topics(topic, timeout=30)
    return {p: m.leader for p, m in meta.topics[topic].partitions.items()}


class _Tail:
    """A read_committed consumer following the telemetry topic in a thread: when committed
    records arrive, whatever the relay and the outbox look like inside."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.count = 0
        self.arrivals: list[float] = []  # monotonic times of polls that brought records
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic), name="tail")
        self._thread.start()

    def _run(self, bootstrap: str, topic: str) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("tail-"),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 2,  # a dead node's reconnects are expected
            }
        )
        try:
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                got = [m for m in consumer.consume(10_000, 0.05) if m.error() is None]
                if got:
                    self.count += len(got)
                    self.arrivals.append(time.monotonic())
        finally:
            consumer.close()

    async def reach(self, n: int, timeout_s: float) -> bool:
        """Wait until `n` records have arrived; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.count < n:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            await asyncio.sleep(0.05)
        return True

    def stall_around(self, t: float) -> tuple[float, float]:
        """(seconds from `t` to the first records after it, the longest gap between arrivals
        from the last one before `t` until 60 s later)."""
        after = [a for a in self.arrivals if a > t]
        before = [a for a in self.arrivals if a <= t]
        first = after[0] - t if after else float("inf")
        window = [*before[-1:], *(a for a in after if a < t + 60)]
        gaps = [b - a for a, b in itertools.pairwise(window)]
        return first, max(gaps, default=first)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_read_committed_sees_every_reading_once_when_the_coordinator_node_is_killed(
    kafka_cluster: KafkaCluster, pg_dsn: str, tmp_path: Path
) -> None:
    cluster = kafka_cluster
    # Small transactions, so the kill lands inside one.
    cfg = kafka_config(
        cluster.bootstrap, batch_readings=2_000, replication_factor=3, min_insync_replicas=2
    )
    await asyncio.to_thread(create_topics, cfg)
    layout = await asyncio.to_thread(_topic_layout, cfg)
    assert layout == {cfg.telemetry_topic: ({3}, "2"), cfg.state_topic: ({3}, "2")}
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump({"storage": pg_dsn, "kafka": cfg.model_dump(exclude_none=True)})
    )
    log = tmp_path / "relay.log"
    site = unique("s")
    t0 = time.time_ns() // 1_000_000 - 3_600_000
    written = 0
    relaying = asyncio.Event()
    kill_point = asyncio.Event()

    def why(what: str) -> str:
        return f"{what}\n--- relay log ---\n{_text(log)[-3000:]}\n{cluster.log_tails()}"

    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()

        async def ingest() -> None:
            nonlocal written
            for seq in range(BATCHES):
                m = seq % MACHINES
                start = t0 + (seq // MACHINES) * 500
                await write(storage, batch(site, f"m{m}", "ag", seq, start, 500, ("a", "b")))
                written += 1
                if written == RELAYING:
                    # However slowly the relay starts, the kill finds ingest running.
                    await relaying.wait()
                if written == KILL_AFTER:
                    kill_point.set()
                await asyncio.sleep(0.2)

        tail = _Tail(cluster.bootstrap, cfg.telemetry_topic)
        relay = start_relay(config, log)
        ingesting = asyncio.create_task(ingest(), name="ingest")
        try:
            # Kill only a relay that is relaying (start-up on a busy machine takes seconds).
            assert await tail.reach(1, 120), why("the relay never committed")
            relaying.set()
            await kill_point.wait()
            # With one partition, __transaction_state-0's leader is the transaction coordinator
            # of every transactional id; it also leads some of the telemetry partitions.
            coordinator = (await asyncio.to_thread(_leaders, cluster, "__transaction_state"))[0]
            led = await asyncio.to_thread(_leaders, cluster, cfg.telemetry_topic)
            assert not ingesting.done(), "ingest finished before the kill"
            at_kill, relayed = written, tail.count
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.kill, coordinator)
            print(
                f"\nkilled node {coordinator} (transaction coordinator, leader of telemetry "
                f"partitions {sorted(p for p, n in led.items() if n == coordinator)}) with "
                f"{at_kill} batches ingested, {relayed} readings relayed"
            )
            # Two of three nodes are min.insync.replicas: batches ingested after the kill must
            # reach read_committed consumers while the node is still down.
            assert await tail.reach((at_kill + RIDE_OUT) * PER_BATCH, 180), why(
                f"relay stuck at {tail.count} readings with node {coordinator} down"
            )
            assert cluster.running() == sorted(set(cluster.nodes) - {coordinator})
            resumed = time.monotonic() - killed_at
            restarted_at = time.monotonic()
            await asyncio.to_thread(cluster.start_node, coordinator)
            back = time.monotonic() - restarted_at
            await ingesting
            assert await tail.reach(TOTAL, 240), why(f"only {tail.count} of {TOTAL} relayed")
            relay.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(relay.wait, 30) == 0, why("relay did not stop cleanly")
        finally:
            ingesting.cancel()
            if relay.poll() is None:
                relay.kill()
                relay.wait()
            tail.stop()
            await asyncio.gather(ingesting, return_exceptions=True)

    first, longest = tail.stall_around(killed_at)
    print(
        f"records reached the consumer again {first:.1f} s after the kill; longest gap "
        f"{longest:.1f} s; {RIDE_OUT} batches ingested after the kill relayed {resumed:.1f} s "
        f"after it; node {coordinator} back in {back:.1f} s"
    )
    print("relay log:", *_relay_lines(log), sep="\n  ")
    records = await asyncio.to_thread(consume_all, cluster.bootstrap, cfg.telemetry_topic, 120)
    raw = await asyncio.to_thread(
        consume_all, cluster.bootstrap, cfg.telemetry_topic, 120, "read_uncommitted"
    )
    print(f"records in the log: {len(raw)}, of aborted transactions: {len(raw) - len(records)}")
    identities = set()
    order: dict[tuple[int, bytes, str], list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        v = json.loads(r.value)
        identities.add((v["site"], v["line"], v["machine"], v["tag"], v["ts"]))
        order.setdefault((r.partition, r.key, v["tag"]), []).append(v["ts"])
    assert len(records) == TOTAL, _text(log)[-3000:]
    assert len(identities) == TOTAL
    assert len({r.key for r in records}) == MACHINES
    # One machine's records, per tag, arrive in ts order within their partition.
    for ts in order.values():
        assert ts == sorted(ts)
