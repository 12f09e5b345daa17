"""The relay: drains the outbox into Kafka in id order, exactly once, with a transactional producer.

Each Kafka transaction carries the records of a run of outbox rows *and* the relay's cursor (the
last row id) on the compacted relay-state topic; either both are committed or neither. On start,
`init_transactions` fences any earlier relay with the same `transactional.id` (its open
transaction is aborted), then the cursor is read back with `read_committed`; relaying resumes
after it. A `read_committed` consumer therefore sees each outbox row's records exactly once, however
the relay dies. Rows up to the committed cursor are deleted from the outbox.

Any failure (Kafka down, a transaction that fails, PostgreSQL gone) ends the session: the producer
is dropped and the next session starts from the cursor in Kafka, after a backoff. Only one relay
is active at a time: it holds a PostgreSQL advisory lock for its session; others stand by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from confluent_kafka import KafkaException, Producer

from hub.bridge.kafka.cursor import read_cursor
from hub.bridge.kafka.outbox import (
    NOTIFY_CHANNEL,
    RELAY_LOCK,
    OutboxLag,
    fetch_rows,
    outbox_lag,
    prune,
)
from hub.bridge.kafka.records import (
    KIND_ALERT,
    KIND_EVENT,
    KIND_TELEMETRY,
    OutboxRow,
    encode_cursor,
    machine_key,
    record_values,
    split_batch,
)
from hub.bridge.kafka.topics import check_topics
from hub.bridge.metrics import BridgeMetrics
from hub.config import KafkaConfig
from hub.errors import KafkaTopicsMissing, KafkaUnavailable, StorageUnavailable
from hub.sql.singleton import PG_ERRORS, connect, lead, wait, wait_any
from millstream_common.backoff import Backoff
from millstream_common.tracing import TraceContext, Tracer

__all__ = ["KafkaRelay", "producer_config"]

log = logging.getLogger(__name__)

MAX_ROWS = 5_000  # outbox rows fetched per query (a transaction also stops at batch_readings)
IDLE_POLL_S = 1.0  # NOTIFY wakes the relay at once; this is the fallback
LAG_INTERVAL_S = 2.0
PG_TIMEOUT_S = 30.0
LIBRDKAFKA_LOG_LEVEL = 2  # syslog levels: 2 = critical; errors reach us as exceptions


_LAG_ERRORS: tuple[type[BaseException], ...] = (StorageUnavailable, *PG_ERRORS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def producer_config(cfg: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings of the relay's transactional producer (pure)."""
    timeout_ms = int(cfg.transaction_timeout_s * 1000)
    return {
        "bootstrap.servers": cfg.bootstrap,
        "transactional.id": cfg.transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": cfg.linger_ms,
        "compression.type": cfg.compression,
        "transaction.timeout.ms": timeout_ms,
        # librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        "message.timeout.ms": timeout_ms,
        # Java clients' partitioner: a key lands on the same partition whoever produces it.
        "partitioner": "murmur2_random",
        # A transaction holds up to batch_readings records before commit flushes them.
        "queue.buffering.max.messages": max(100_000, 2 * cfg.batch_readings),
        # librdkafka logs every failed reconnect to stderr; the relay reports an outage once itself.
        "log_level": LIBRDKAFKA_LOG_LEVEL,
    }


class KafkaRelay:
    """Outbox → Kafka (see module docstring); `await relay.run(stop)` until `stop` is set."""

    def __init__(
        self,
        cfg: KafkaConfig,
        dsn: str,
        *,
        metrics: BridgeMetrics | None = None,
        topics_fatal: bool = False,
        clock: Callable[[], int] = _now_ms,
        tracer: Tracer | None = None,
    ) -> None:
        """`tracer`: continue each traced batch's trace with a `kafka.produce` span."""
        self._tracer = tracer
        self.cfg = cfg
        self._dsn = dsn
        self.metrics = metrics or BridgeMetrics()
        self._topics_fatal = topics_fatal
        self._clock = clock
        self.state = "starting"
        self.lag: OutboxLag | None = None
        self.cursor: int | None = None
        self._failing = False

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready`: relay state and outbox lag."""
        lag = self.lag
        return {
            "relay": self.state,
            "outbox_rows": None if lag is None else lag.rows,
            "outbox_readings": None if lag is None else lag.readings,
            "outbox_oldest_age_s": None if lag is None else round(lag.age_s(self._clock()), 3),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop`; Kafka/PostgreSQL failures are retried with backoff."""
        backoff = Backoff(0.5, 30.0)
        if self._topics_fatal:
            # The standalone relay says at once when the topics are missing (Kafka reachable).
            await self._check_topics_at_start(stop, backoff)
        while not stop.is_set():
            try:
                await self._session(stop, backoff)
            except KafkaTopicsMissing as exc:
                self._fail(str(exc), error=True)
                if self._topics_fatal:
                    raise
            except (KafkaUnavailable, StorageUnavailable) as exc:
                self._fail(str(exc))
            else:
                continue
            await wait(stop, backoff.next_delay())
        self.metrics.relay_up.set(0)

    async def _check_topics_at_start(self, stop: asyncio.Event, backoff: Backoff) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(check_topics, self.cfg)
            except KafkaTopicsMissing:
                raise
            except KafkaUnavailable as exc:
                self._fail(str(exc))
                await wait(stop, backoff.next_delay())
            else:
                return

    def _fail(self, why: str, *, error: bool = False) -> None:
        self.state = f"unavailable: {why}"[:300]
        self.metrics.relay_up.set(0)
        self.metrics.relay_errors.inc()
        if not self._failing:
            # Once per outage, then quietly (the counter and /health/ready keep telling).
            log.log(logging.ERROR if error else logging.WARNING, "kafka relay: %s", why)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.info("kafka relay: relaying again from outbox id %s", self.cursor)
        self._failing = False
        self.state = "ok"
        self.metrics.relay_up.set(1)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        conn = await connect(self._dsn, "relay")
        try:
            try:
                if not await lead(conn, RELAY_LOCK, stop, self._standby):
                    return
                await self._relay(conn, stop, backoff)
            except PG_ERRORS as exc:
                raise StorageUnavailable(f"relay lost PostgreSQL: {exc}") from exc
        finally:
            with contextlib.suppress(*PG_ERRORS):
                await conn.close(timeout=5)

    def _standby(self) -> None:
        self.state = "standby: another hub instance relays"
        self.metrics.relay_up.set(0)

    async def _relay(self, conn: asyncpg.Connection, stop: asyncio.Event, backoff: Backoff) -> None:
        cfg = self.cfg
        optional = await asyncio.to_thread(check_topics, cfg)
        producer = await asyncio.to_thread(self._open_producer)
        try:
            cursor = await asyncio.to_thread(
                read_cursor, cfg.bootstrap, cfg.state_topic, cfg.transactional_id
            )
            self.cursor = cursor
            log.info("kafka relay: active, relaying outbox rows after id %d", cursor)
            wake = asyncio.Event()
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
            async with asyncio.timeout(PG_TIMEOUT_S):
                await prune(conn, cursor)
            self._ok()
            backoff.reset()
            rows: list[OutboxRow] = []
            while not stop.is_set():
                if not rows:
                    wake.clear()
                    async with asyncio.timeout(PG_TIMEOUT_S):
                        rows = await fetch_rows(conn, cursor, MAX_ROWS)
                    if not rows:
                        await wait_any(wake, stop, IDLE_POLL_S)
                        continue
                take = split_batch(rows, cfg.batch_readings)
                batch, rows = rows[:take], rows[take:]
                # Read the next rows from PostgreSQL while Kafka commits this transaction.
                ahead = None
                if not rows:
                    ahead = asyncio.create_task(
                        fetch_rows(conn, batch[-1].id, MAX_ROWS), name="outbox-read-ahead"
                    )
                try:
                    await asyncio.to_thread(self._transact, producer, batch, optional)
                except BaseException:
                    if ahead is not None:
                        ahead.cancel()
                        with contextlib.suppress(BaseException):
                            await ahead
                    raise
                cursor = self.cursor = batch[-1].id
                self._ok()
                if ahead is not None:
                    async with asyncio.timeout(PG_TIMEOUT_S):
                        rows = await ahead
                async with asyncio.timeout(PG_TIMEOUT_S):
                    await prune(conn, cursor)
        finally:
            # Closing may wait on an unreachable broker; it must not delay the next session (which
            # fences this producer anyway), so it runs on its own and holds the last reference.
            threading.Thread(
                target=_close, args=(producer,), name="kafka-close", daemon=True
            ).start()
            del producer

    def _open_producer(self) -> Producer:
        producer = Producer(producer_config(self.cfg))
        try:
            # Fences any earlier relay with our transactional.id and settles its open transaction.
            producer.init_transactions(self.cfg.transaction_timeout_s)
        except KafkaException as exc:
            _close(producer)
            raise KafkaUnavailable(f"init_transactions: {exc}") from exc
        return producer

    def _transact(
        self, producer: Producer, rows: Sequence[OutboxRow], optional: frozenset[str]
    ) -> None:
        """One Kafka transaction: the rows' records plus the new cursor (runs in a thread)."""
        cfg = self.cfg
        topic = cfg.telemetry_topic
        counts = {topic: 0, cfg.deadletter_topic: 0, cfg.alerts_topic: 0, cfg.events_topic: 0}
        traced: list[tuple[OutboxRow, TraceContext, TraceContext]] = []
        started_ns = time.time_ns()
        try:
            producer.begin_transaction()
            for row in rows:
                if row.kind == KIND_TELEMETRY:
                    key = machine_key(row.site or "", row.line or "", row.machine or "")
                    headers: list[tuple[str, str | bytes | None]] = [
                        ("src", (row.src or "").encode()),
                        ("seq", str(row.seq).encode()),
                    ]
                    if row.trace is not None:
                        headers.append(("traceparent", self._trace_header(row, traced)))
                    for value in record_values(row):
                        _produce(producer, topic, value, key, headers)
                    counts[topic] += row.n
                elif row.kind in (KIND_ALERT, KIND_EVENT):
                    to = cfg.alerts_topic if row.kind == KIND_ALERT else cfg.events_topic
                    if to in optional:
                        key = machine_key(row.site or "", row.line or "", row.machine or "")
                        _produce(producer, to, row.body, key, None)
                        counts[to] += 1
                elif cfg.deadletter_topic in optional:
                    key = (row.src or "").encode()
                    _produce(producer, cfg.deadletter_topic, row.body, key, None)
                    counts[cfg.deadletter_topic] += 1
            cursor = encode_cursor(rows[-1].id, self._clock())
            _produce(producer, cfg.state_topic, cursor, cfg.transactional_id.encode(), None)
            producer.commit_transaction(cfg.transaction_timeout_s)
        except KafkaException as exc:
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(5.0)
            raise KafkaUnavailable(f"Kafka transaction failed: {exc}") from exc
        self._emit(traced, started_ns)
        for name, n in counts.items():
            if n:
                self.metrics.relayed.labels(name).inc(n)
        self.metrics.transactions.inc()

    def _trace_header(
        self, row: OutboxRow, traced: list[tuple[OutboxRow, TraceContext, TraceContext]]
    ) -> bytes:
        """The records' `traceparent`: this relay's produce span (docs/tracing.md), or the
        hub's as stored when this process does not trace."""
        assert row.trace is not None
        parent = TraceContext.parse(row.trace) if self._tracer is not None else None
        if parent is None:
            return row.trace.encode()
        produce = parent.child()
        traced.append((row, parent, produce))
        return produce.traceparent.encode()

    def _emit(
        self, traced: list[tuple[OutboxRow, TraceContext, TraceContext]], started_ns: int
    ) -> None:
        """The `kafka.produce` spans of a committed transaction's traced rows."""
        if self._tracer is None:
            return
        now = time.time_ns()
        for row, parent, produce in traced:
            if produce.sampled:
                self._tracer.emit(
                    "kafka.produce",
                    produce,
                    parent,
                    start_ns=started_ns,
                    end_ns=now,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": self.cfg.telemetry_topic,
                        "millstream.outbox_id": row.id,
                        "millstream.readings": row.n,
                    },
                    kind="producer",
                )

    async def watch_lag(self, stop: asyncio.Event) -> None:
        """Measure the outbox every few seconds into metrics and `health()` (any instance)."""
        conn: asyncpg.Connection | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.is_closed():
                    conn = await connect(self._dsn, "relay")
                async with asyncio.timeout(PG_TIMEOUT_S):
                    self.lag = lag = await outbox_lag(conn)
                self.metrics.outbox_rows.set(lag.rows)
                self.metrics.outbox_readings.set(lag.readings)
                self.metrics.outbox_age.set(lag.age_s(self._clock()))
            except _LAG_ERRORS:
                if conn is not None:
                    conn.terminate()
                conn = None
            await wait(stop, LAG_INTERVAL_S)
        if conn is not None:
            with contextlib.suppress(*PG_ERRORS):
                await conn.close(timeout=5)


def _produce(
    producer: Producer,
    topic: str,
    value: str | bytes,
    key: bytes,
    headers: list[tuple[str, str | bytes | None]] | None,
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
        except BufferError:
            # Local queue full: serve delivery reports until librdkafka has room again.
            producer.poll(0.05)
        else:
            return


def _close(producer: Producer) -> None:
    # Drop whatever is queued (an aborted or fenced transaction's records); the handle is
    # destroyed when this, the last reference, goes. Best effort: a dead broker may refuse.
    with contextlib.suppress(Exception):
        producer.purge()
        producer.flush(0)
