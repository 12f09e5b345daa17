"""The relays: drain the outbox into Kafka shard by shard, each in order, exactly once.

The outbox is split into shards by machine (outbox.py). Each shard is relayed by one relay at a
time, with a transactional producer of its own (`transactional.id` = the configured id + `-` +
the shard): every Kafka transaction carries the records of a run of the shard's rows *and* the
shard's cursor (the last row's (xid, id)) on the compacted relay-state topic; either both are
committed or neither. When a relay takes a shard, `init_transactions` fences whoever had it
before (its open transaction is aborted), then the cursor is read back with `read_committed`
and relaying resumes after it. A `read_committed` consumer therefore sees each row's records
exactly once, however relays die or hand shards over; a machine's records stay in order, since
its rows are all in one shard. Rows up to the committed cursor are deleted.

Any number of relays run side by side (one in each hub instance, or `millstream-hub kafka-relay`
processes). Each holds a PostgreSQL advisory lock that says it is there, and one per shard it
relays; every few seconds each one counts the relays present and takes free shards, or hands
some back, until each has its share. A relay that dies releases its locks with its connections:
the others take its shards over. A failure in one shard (Kafka down, a transaction that fails,
PostgreSQL gone) ends this relay's session: its shards are released, and it starts again after a
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
from confluent_kafka import KafkaException, Producer

from hub.bridge.kafka.cursor import read_cursors
from hub.bridge.kafka.outbox import (
    NOTIFY_CHANNEL,
    RELAY_CLASS,
    SHARD_CLASS,
    OutboxLag,
    Position,
    fetch_rows,
    outbox_lag,
    prune,
    shard_count,
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
from hub.sql.singleton import PG_ERRORS, connect, wait, wait_any
from millstream_common.backoff import Backoff
from millstream_common.tracing import TraceContext, Tracer

__all__ = ["KafkaRelay", "producer_config", "shares"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ROWS = 5_000  # outbox rows fetched per query (a transaction also stops at batch_readings)
IDLE_POLL_S = 1.0  # NOTIFY wakes the relay at once; this is the fallback
LAG_INTERVAL_S = 2.0
PG_TIMEOUT_S = 30.0
LIBRDKAFKA_LOG_LEVEL = 2  # syslog levels: 2 = critical; errors reach us as exceptions
REBALANCE_S = 3.0  # how often a relay counts the others and takes or hands back shards
# The single lock the relay held before shards (0x6D73_0009): taken shared, so a relay of an
# older version, which wants it alone, stands by while any of these runs (and they wait for it).
_PRE_SHARD_LOCK = 0x6D73_0009


_LAG_ERRORS: tuple[type[BaseException], ...] = (StorageUnavailable, *PG_ERRORS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def shard_id(cfg: KafkaConfig, shard: int) -> str:
    """A shard's transactional id, also the key of its cursor on the relay-state topic."""
    return f"{cfg.transactional_id}-{shard}"


def shares(shards: int, relays: int) -> int:
    """How many shards one relay takes when `relays` share `shards` (pure)."""
    return -(-shards // max(1, relays))


def producer_config(cfg: KafkaConfig, shard: int = 0) -> dict[str, Any]:
    """librdkafka settings of a shard's transactional producer (pure)."""
    timeout_ms = int(cfg.transaction_timeout_s * 1000)
    return {
        "bootstrap.servers": cfg.bootstrap,
        "transactional.id": shard_id(cfg, shard),
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
        self.cursors: dict[int, Position] = {}  # shard → its last committed cursor
        self.shards: set[int] = set()  # the shards this relay relays now
        self._threads: ThreadPoolExecutor | None = None
        self._failing = False

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready`: relay state, its shards and outbox lag."""
        lag = self.lag
        return {
            "relay": self.state,
            "relay_shards": sorted(self.shards),
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
            log.info("kafka relay: relaying again (shards %s)", sorted(self.shards))
        self._failing = False
        self.state = "ok" if self.shards else "standby: the other relays have every shard"
        self.metrics.relay_up.set(1 if self.shards else 0)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        control = await connect(self._dsn, "relay")
        try:
            try:
                async with asyncio.timeout(PG_TIMEOUT_S):
                    # Present (others count us) and not beside a relay of the single-lock era.
                    await control.execute("SELECT pg_advisory_lock_shared($1)", _PRE_SHARD_LOCK)
                    await control.execute(
                        "SELECT pg_advisory_lock($1, pg_backend_pid())", RELAY_CLASS
                    )
                    shards = await shard_count(control)
                optional = await asyncio.to_thread(check_topics, self.cfg)
                await self._share(control, shards, optional, stop, backoff)
            except PG_ERRORS as exc:
                raise StorageUnavailable(f"relay lost PostgreSQL: {exc}") from exc
        finally:
            self.shards = set()
            with contextlib.suppress(*PG_ERRORS):
                await control.close(timeout=5)

    async def _share(
        self,
        control: asyncpg.Connection,
        shards: int,
        optional: frozenset[str],
        stop: asyncio.Event,
        backoff: Backoff,
    ) -> None:
        """Relay this relay's share of the shards until `stop`; a shard that fails ends it."""
        running: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._threads = ThreadPoolExecutor(shards + 1, thread_name_prefix="kafka-relay")
        # Start the search for free shards somewhere else in each relay: fewer collisions.
        first = random.randrange(shards)  # noqa: S311 -- a spread, not a secret
        try:
            async with asyncio.TaskGroup() as tg:
                while not stop.is_set():
                    for shard in [s for s, (task, _) in running.items() if task.done()]:
                        del running[shard]
                    async with asyncio.timeout(PG_TIMEOUT_S):
                        relays = await control.fetchval(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            " AND classid = $1 AND objsubid = 2 AND granted",
                            RELAY_CLASS,
                        )
                    want = shares(shards, int(relays))
                    for shard in sorted(running)[want:]:  # hand back what others should have
                        running[shard][1].set()
                    for n in range(shards):
                        if sum(not done.is_set() for _, done in running.values()) >= want:
                            break
                        shard = (first + n) % shards
                        if shard in running:
                            continue
                        conn = await self._claim(shard)
                        if conn is not None:
                            done = asyncio.Event()
                            task = tg.create_task(
                                self._relay_shard(
                                    shard, conn, optional=optional, until=(stop, done),
                                    backoff=backoff,
                                ),
                                name=f"kafka-relay-{shard}",
                            )  # fmt: skip
                            running[shard] = (task, done)
                    self.shards = {s for s, (_, done) in running.items() if not done.is_set()}
                    self._ok()
                    await wait(stop, REBALANCE_S)
        except* (KafkaUnavailable, StorageUnavailable, KafkaTopicsMissing) as group:
            raise group.exceptions[0] from None
        finally:
            # A Kafka call still blocked in a thread ends on its own timeout; not waited for.
            self._threads.shutdown(wait=False)

    async def _claim(self, shard: int) -> asyncpg.Connection | None:
        """A connection holding `shard`'s lock, or None when another relay has it."""
        conn = await connect(self._dsn, "relay")
        try:
            async with asyncio.timeout(PG_TIMEOUT_S):
                if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", SHARD_CLASS, shard):
                    return conn
        except PG_ERRORS:
            conn.terminate()
            raise
        with contextlib.suppress(*PG_ERRORS):
            await conn.close(timeout=5)
        return None

    async def _relay_shard(
        self,
        shard: int,
        conn: asyncpg.Connection,
        *,
        optional: frozenset[str],
        until: tuple[asyncio.Event, asyncio.Event],
        backoff: Backoff,
    ) -> None:
        """Relay one shard until `stop` or it is handed back (`until`), then release it."""
        producer: Producer | None = None
        try:
            producer = await self._blocking(self._open_producer, shard)
            cursor = await self._blocking(self._read_cursor, shard)
            self.cursors[shard] = cursor
            log.info("kafka relay: shard %d active, relaying after %s", shard, cursor)
            async with asyncio.timeout(PG_TIMEOUT_S):
                await prune(conn, shard, cursor)
            backoff.reset()
            await self._drain(shard, conn, producer, optional, until)
            if until[1].is_set():
                log.info("kafka relay: shard %d handed over at %s", shard, self.cursors[shard])
        except PG_ERRORS as exc:
            raise StorageUnavailable(f"relay lost PostgreSQL: {exc}") from exc
        finally:
            if producer is not None:
                # Closing may wait on an unreachable broker; it must not delay the next session
                # (which fences this producer anyway), so it runs on its own.
                threading.Thread(
                    target=_close, args=(producer,), name="kafka-close", daemon=True
                ).start()
                del producer
            with contextlib.suppress(*PG_ERRORS):  # releases the shard's lock
                await conn.close(timeout=5)

    async def _drain(
        self,
        shard: int,
        conn: asyncpg.Connection,
        producer: Producer,
        optional: frozenset[str],
        until: tuple[asyncio.Event, asyncio.Event],
    ) -> None:
        """Relay the shard's rows as they commit, transaction by transaction."""
        cursor = self.cursors[shard]
        wake = asyncio.Event()
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        rows: list[OutboxRow] = []
        while not any(e.is_set() for e in until):
            if not rows:
                wake.clear()
                async with asyncio.timeout(PG_TIMEOUT_S):
                    rows = await fetch_rows(conn, shard, cursor, MAX_ROWS)
                if not rows:
                    await wait_any(wake, until[0], IDLE_POLL_S)
                    continue
            take = split_batch(rows, self.cfg.batch_readings)
            batch, rows = rows[:take], rows[take:]
            last = (batch[-1].xid, batch[-1].id)
            # Read the next rows from PostgreSQL while Kafka commits this transaction.
            ahead = None
            if not rows:
                ahead = asyncio.create_task(
                    fetch_rows(conn, shard, last, MAX_ROWS), name="outbox-read-ahead"
                )
            try:
                await self._blocking(self._transact, producer, shard, batch, optional)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(BaseException):
                        await ahead
                raise
            cursor = self.cursors[shard] = last
            if ahead is not None:
                async with asyncio.timeout(PG_TIMEOUT_S):
                    rows = await ahead
            async with asyncio.timeout(PG_TIMEOUT_S):
                await prune(conn, shard, cursor)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking Kafka call on this relay's threads: one per shard it may hold, so a
        shard never waits for a thread while others' transactions commit (the loop's default
        executor has as few as 6)."""
        assert self._threads is not None
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def _read_cursor(self, shard: int) -> Position:
        """The shard's committed cursor; for shard 0, else the relay's from before shards (an
        id, of rows all in shard 0 with xid 0)."""
        cfg = self.cfg
        key = shard_id(cfg, shard)
        keys = [key, cfg.transactional_id] if shard == 0 else [key]
        found = read_cursors(cfg.bootstrap, cfg.state_topic, keys)
        if shard == 0 and found[key] == (0, 0):
            return found[cfg.transactional_id]
        return found[key]

    def _open_producer(self, shard: int) -> Producer:
        producer = Producer(producer_config(self.cfg, shard))
        try:
            # Fences whoever had this shard before and settles its open transaction.
            producer.init_transactions(self.cfg.transaction_timeout_s)
        except KafkaException as exc:
            _close(producer)
            raise KafkaUnavailable(f"init_transactions: {exc}") from exc
        return producer

    def _transact(
        self, producer: Producer, shard: int, rows: Sequence[OutboxRow], optional: frozenset[str]
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
            cursor = encode_cursor((rows[-1].xid, rows[-1].id), self._clock())
            _produce(producer, cfg.state_topic, cursor, shard_id(cfg, shard).encode(), None)
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
