"""PostgreSQL backend: asyncpg pool, COPY into a staging table, dedup by primary key.

One `write` = one transaction: COPY the readings into a per-connection temp table, then a single
statement inserts them with `ON CONFLICT DO NOTHING` and folds exactly the rows it inserted
(`RETURNING`) into the minute and hour rollups; dead letters, status updates and the
transaction hooks (the Kafka outbox row per batch) run in the same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg

from hub.errors import SchemaError, StorageRejected, StorageUnavailable
from hub.storage import statements as stmt
from hub.storage.migrations import load_migrations
from hub.storage.model import (
    DEAD_LETTER_PAYLOAD_LIMIT,
    MachineMetaUpdate,
    TelemetryBatch,
    WriteBatch,
    WriteResult,
)
from hub.storage.rows import (
    DAY_MS,
    SeriesIds,
    birth_rows,
    drop_rows,
    event_rows,
    missing_series,
    newest_metas,
    outage_events,
    owner_rows,
    produced_rows,
    result_rows,
    tag_meta_rows,
    to_rows,
)

__all__ = ["PostgresStorage", "TransactionHook"]

_T = TypeVar("_T")

# Partitions created ahead of today, so the first batch after midnight never waits on DDL.
PARTITIONS_AHEAD_DAYS = 2
_MIGRATION_LOCK = 0x6D73_0001  # advisory lock ids: "ms" + purpose
_PARTITION_LOCK = 0x6D73_0002

# Called inside the ingest transaction after the readings are written (the Kafka outbox row per
# telemetry batch). Raising aborts the whole transaction, so nothing is acknowledged.
TransactionHook = Callable[[asyncpg.Connection, WriteBatch, WriteResult], Awaitable[None]]

_STAGING = """
CREATE TEMP TABLE ms_staging (
    series_id integer, ts bigint, value double precision, value_text text, quality smallint
) ON COMMIT DELETE ROWS
"""

_MERGE = """
    ON CONFLICT (series_id, bucket) DO UPDATE SET
        min = least(r.min, excluded.min),
        max = greatest(r.max, excluded.max),
        sum = r.sum + excluded.sum,
        count = r.count + excluded.count,
        last_value = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_value
                          ELSE r.last_value END,
        last_ts = greatest(r.last_ts, excluded.last_ts)
"""

# Minute buckets are folded from the inserted rows; hour buckets from those minute buckets (a
# few hundred rows instead of every reading). ORDER BY gives every hub instance the same lock
# order on rows and buckets, so two instances writing the same series cannot deadlock.
_INSERT = f"""
WITH ins AS (
    INSERT INTO readings (series_id, ts, value, value_text, quality)
    SELECT series_id, ts, value, value_text, quality FROM ms_staging ORDER BY series_id, ts
    ON CONFLICT DO NOTHING
    RETURNING series_id, ts, value
),
mb AS (
    SELECT series_id, ts - ts % 60000 AS bucket, min(value) AS min, max(value) AS max,
           sum(value) AS sum, count(*) AS count, max(ts) AS last_ts,
           (array_agg(value ORDER BY ts DESC))[1] AS last_value
    FROM ins WHERE value IS NOT NULL GROUP BY 1, 2
),
m AS (
    INSERT INTO rollup_minute AS r (series_id, bucket, min, max, sum, count, last_ts, last_value)
    SELECT * FROM mb ORDER BY series_id, bucket
    {_MERGE}
    RETURNING 1
),
h AS (
    INSERT INTO rollup_hour AS r (series_id, bucket, min, max, sum, count, last_ts, last_value)
    SELECT series_id, bucket - bucket % 3600000, min(min), max(max), sum(sum), sum(count),
           max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1]
    FROM mb GROUP BY 1, 2 ORDER BY 1, 2
    {_MERGE}
    RETURNING 1
),
-- Text readings have no rollup; completeness counts them per minute here. A data-modifying
-- CTE always runs to completion, whether or not the final SELECT reads it.
t AS (
    INSERT INTO text_minute AS c (series_id, bucket, count)
    SELECT series_id, ts - ts % 60000, count(*) FROM ins WHERE value IS NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (series_id, bucket) DO UPDATE SET count = c.count + excluded.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM m), (SELECT count(*) FROM h)
"""  # noqa: S608 -- built from constants only


# SQLSTATE classes that say "the database cannot do it right now", not "this data is wrong":
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources (disk full, out of memory, too many connections), 57 operator intervention
# (shutdown, cannot connect now), 58 system error (I/O). Every other error the server raises
# is about the batch (a data exception, a constraint, a limit, an operator's trigger): the same
# batch fails again however often it is retried, so it is isolated and dead-lettered, never
# retried for ever in front of every other site's data.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def _refuses_the_data(exc: BaseException) -> bool:
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return sqlstate[:2] not in _TRANSIENT_CLASSES


# Failures that say "the database is not there right now" rather than "this data is wrong".
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresError,  # those `_refuses_the_data` leaves: the classes above
    # The server ended the session (shutdown, failover, pg_terminate_backend) between two
    # protocol steps of one statement: asyncpg reports "cannot switch to state N; another
    # operation (2) is in progress" instead of a lost connection (MagicStack/asyncpg#1069).
    # The pool discards that connection (its reset fails), so a retry gets a fresh one.
    asyncpg.InternalClientError,
)


def _partition_name(day: int) -> str:
    return "readings_" + dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%Y%m%d")


async def _replace_meta(conn: asyncpg.Connection, m: MachineMetaUpdate) -> None:
    key = (m.site, m.line, m.machine)
    row = (*key, m.ts, m.payload, m.received_at, m.quiet_ms, m.scheduled_per_minute)
    if await conn.fetchval(stmt.META_UPSERT, *row) is None:
        return  # an older message than the one kept
    await conn.execute("DELETE FROM tag_meta WHERE site = $1 AND line = $2 AND machine = $3", *key)
    if m.tags:
        await conn.execute(
            "INSERT INTO tag_meta (site, line, machine, tag, unit, description, limit_low,"
            " limit_high, writable, write_min, write_max) SELECT $1, $2, $3, * FROM"
            " unnest($4::text[], $5::text[], $6::text[], $7::double precision[],"
            " $8::double precision[], $9::boolean[], $10::double precision[],"
            " $11::double precision[])",
            *key,
            *(list(col) for col in zip(*tag_meta_rows(m), strict=True)),
        )


class PostgresStorage:
    """`Storage` on PostgreSQL (see module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        retention_days: int = 90,
        dead_letter_retention_days: int = 30,
        hooks: Sequence[TransactionHook] = (),
        max_connections: int = 4,
        command_timeout_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._retention_days = retention_days
        self._dl_retention_days = dead_letter_retention_days
        self._hooks = list(hooks)
        self._max_connections = max_connections
        self._timeout = command_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._series: SeriesIds = {}
        self._partitions: set[int] = set()

    async def __aenter__(self) -> Self:
        # min_size=0: the hub starts (and reports not-ready) even while PostgreSQL is down.
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_connections,
            command_timeout=self._timeout,
            init=self._init_connection,
            # Sorting and aggregating a batch must stay in memory (the default 4 MB spills to disk
            # from ~40,000 readings); a connection-level default survives the pool's RESET ALL.
            server_settings={"work_mem": "32MB", "application_name": "millstream-hub"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            try:
                async with asyncio.timeout(10):
                    await self._pool.close()
            except TimeoutError:
                self._pool.terminate()
            self._pool = None

    def add_hook(self, hook: TransactionHook) -> None:
        """Run `hook` inside every ingest transaction (the Kafka outbox insert)."""
        self._hooks.append(hook)

    @staticmethod
    async def _init_connection(conn: asyncpg.Connection) -> None:
        await conn.execute(_STAGING)

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (for code that shares this database, e.g. the outbox relay)."""
        if self._pool is None:
            raise RuntimeError("PostgresStorage used outside `async with`")
        return self._pool

    async def _call(self, op: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        try:
            async with asyncio.timeout(self._timeout), self.pool.acquire() as conn:
                return await op(conn)
        except _TRANSIENT as exc:
            if _refuses_the_data(exc):
                raise StorageRejected(f"PostgreSQL refused the data: {exc}") from exc
            raise StorageUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations under an advisory lock; return the names applied."""

        async def run(conn: asyncpg.Connection) -> list[str]:
            applied: list[str] = []
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for mig in load_migrations("postgresql"):
                    if mig.version in done:
                        continue
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        mig.version,
                        mig.name,
                    )
                    applied.append(mig.name)
            return applied

        applied = await self._call(run)
        self._series.clear()
        self._partitions.clear()
        return applied

    async def check_schema(self) -> None:
        """Raise `SchemaError` unless the database is exactly at the latest known migration."""

        async def versions(conn: asyncpg.Connection) -> set[int] | None:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not exists:
                return None
            return {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}

        found = await self._call(versions)
        known = {m.version for m in load_migrations("postgresql")}
        if found is None or not known <= found:
            missing = sorted(known - (found or set()))
            raise SchemaError(
                f"database schema is missing migrations {missing}; run `millstream-hub migrate`"
            )
        if found - known:
            raise SchemaError(
                f"database has migrations {sorted(found - known)} this hub does not know; "
                "upgrade the hub"
            )

    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless PostgreSQL answers."""

        async def run(conn: asyncpg.Connection) -> None:
            await conn.fetchval("SELECT 1")

        await self._call(run)

    async def _series_ids(self, batches: Sequence[TelemetryBatch]) -> None:
        missing = sorted(missing_series(batches, self._series))
        if not missing:
            return

        # Committed on its own: a series row without readings is harmless, and ids in the cache
        # must never come from a transaction that might roll back.
        async def run(conn: asyncpg.Connection) -> list[Any]:
            cols = list(zip(*missing, strict=True))
            await conn.execute(
                "INSERT INTO series (site, line, machine, tag)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
                " ORDER BY 1, 2, 3, 4 ON CONFLICT DO NOTHING",
                *cols,
            )
            rows: list[Any] = await conn.fetch(
                "SELECT s.id, s.site, s.line, s.machine, s.tag FROM series s"
                " JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[])"
                " AS k(site, line, machine, tag) USING (site, line, machine, tag)",
                *cols,
            )
            return rows

        for row in await self._call(run):
            self._series.setdefault((row[1], row[2], row[3]), {})[row[4]] = row[0]

    async def _ensure_partitions(self, days: set[int]) -> None:
        missing = sorted(days - self._partitions)
        if not missing:
            return

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                # Two hub instances may create the same day at once; serialize the DDL.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
                for day in missing:
                    lo, hi = day * DAY_MS, (day + 1) * DAY_MS
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {_partition_name(day)} PARTITION OF readings"
                        f" FOR VALUES FROM ({lo}) TO ({hi})"
                    )

        await self._call(run)
        self._partitions.update(missing)

    async def write(self, batch: WriteBatch) -> WriteResult:
        """Commit the batch in one transaction (see module docstring)."""
        await self._series_ids(batch.telemetry)
        records, days = to_rows(batch.telemetry, self._series)
        await self._ensure_partitions(days)

        async def run(conn: asyncpg.Connection) -> WriteResult:
            inserted = 0
            async with conn.transaction():
                if records:
                    await conn.copy_records_to_table("ms_staging", records=records)
                    inserted = await conn.fetchval(_INSERT)
                if batch.dead_letters:
                    await conn.executemany(
                        "INSERT INTO dead_letters (received_at, topic, payload, payload_size,"
                        " reason, message, src) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        [
                            (
                                d.received_at,
                                d.topic,
                                d.payload[:DEAD_LETTER_PAYLOAD_LIMIT],
                                d.payload_size,
                                d.reason,
                                d.message,
                                d.src,
                            )
                            for d in batch.dead_letters
                        ],
                    )
                if batch.machines:
                    await conn.executemany(
                        stmt.MACHINE_UPSERT,
                        [
                            (
                                m.site,
                                m.line,
                                m.machine,
                                m.state,
                                m.ts,
                                m.detail,
                                m.payload,
                                m.received_at,
                            )
                            for m in batch.machines
                        ],
                    )
                if batch.agents:
                    await conn.executemany(
                        stmt.AGENT_UPSERT,
                        [
                            (
                                a.agent_id,
                                a.state,
                                a.ts,
                                a.version,
                                a.buffer_depth,
                                a.drops,
                                a.payload,
                                a.received_at,
                            )
                            for a in batch.agents
                        ],
                    )
                if produced := produced_rows(batch.agents):
                    await conn.executemany(stmt.PRODUCED_UPSERT, produced)
                if owners := owner_rows(batch.agents):
                    await conn.executemany(stmt.OWNER_UPSERT, owners)
                if drops := drop_rows(batch.agents):
                    await conn.executemany(stmt.DROP_SPAN_UPSERT, drops)
                for e in outage_events(batch.machines, batch.agents):
                    if e.kind == "device":
                        sql = stmt.DEVICE_OUTAGE_OPEN if e.opens else stmt.DEVICE_OUTAGE_CLOSE
                    else:
                        sql = stmt.AGENT_OUTAGE_OPEN if e.opens else stmt.AGENT_OUTAGE_CLOSE
                    await conn.execute(sql, *e.key, *((e.reason,) if e.opens else ()), e.at_ms)
                for meta in newest_metas(batch.metas):
                    await _replace_meta(conn, meta)
                await conn.executemany(stmt.COMMAND_RESULT, result_rows(batch.results))
                await conn.executemany(stmt.SPARKPLUG_BIRTH_UPSERT, birth_rows(batch.births))
                await conn.executemany(stmt.EVENT_INSERT, event_rows(batch.events))
                result = WriteResult(inserted, len(records) - inserted)
                for hook in self._hooks:
                    await hook(conn, batch, result)
            return result

        return await self._call(run)

    async def maintain(self, now_ms: int) -> None:
        """Create partitions ahead; drop readings, rollups, production, dead letters and cleared
        alerts past retention."""
        today = now_ms // DAY_MS
        await self._ensure_partitions(set(range(today, today + PARTITIONS_AHEAD_DAYS + 1)))
        cutoff_day = today - self._retention_days
        dl_cutoff = now_ms - self._dl_retention_days * DAY_MS

        async def run(conn: asyncpg.Connection) -> None:
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'readings'::regclass"
            )
            for (name,) in names:
                day = dt.datetime.strptime(name[-8:], "%Y%m%d").replace(tzinfo=dt.UTC)
                day_no = int(day.timestamp()) // 86_400
                if day_no < cutoff_day:
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
                    self._partitions.discard(day_no)
            await conn.execute("DELETE FROM dead_letters WHERE received_at < $1", dl_cutoff)
            await conn.execute("DELETE FROM machine_events WHERE ts < $1", cutoff_day * DAY_MS)
            await conn.execute(
                "DELETE FROM produced_minutes WHERE minute < $1", cutoff_day * DAY_MS
            )
            # Rollups follow the readings they summarise (hour buckets are day-aligned too).
            for table in ("rollup_minute", "rollup_hour", "text_minute"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE bucket < $1",  # noqa: S608 -- constant names
                    cutoff_day * DAY_MS,
                )
            # Alerts cleared before the readings' retention go with them (their transitions by
            # cascade); open ones stay however old, and so do lapsed shelves' records for a while.
            await conn.execute(
                "DELETE FROM alerts WHERE state = 'cleared' AND cleared_ms < $1",
                cutoff_day * DAY_MS,
            )
            await conn.execute("DELETE FROM alert_shelves WHERE until_ms < $1", cutoff_day * DAY_MS)

        await self._call(run)
