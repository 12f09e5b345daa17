"""SQLite backend: the same tables minus partitioning, WAL, for the demo and small sites.

sqlite3 blocks, so every call runs on one dedicated thread (which also owns the connection);
the event loop only awaits it. Transaction hooks (the alert feed) run on that thread inside the
write transaction, told which readings and events it inserted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from hub.errors import SchemaError, StorageRejected, StorageUnavailable
from hub.storage import statements as stmt
from hub.storage.committed import EventKey, NewReadings, narrow
from hub.storage.migrations import load_migrations
from hub.storage.model import (
    DEAD_LETTER_PAYLOAD_LIMIT,
    MachineMetaUpdate,
    SeriesKey,
    WriteBatch,
    WriteResult,
)
from hub.storage.rollup import BUCKET_MS, aggregate, text_counts
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

__all__ = ["SqliteHook", "SqliteStorage"]

# Called inside the ingest transaction, on the storage's thread, with the readings (per telemetry
# batch) and the events the transaction inserted. Raising rolls the whole transaction back.
SqliteHook = Callable[[sqlite3.Connection, WriteBatch, NewReadings, set[EventKey]], None]

# The shared statements (hub/storage/statements.py) in SQLite's dialect.
_AGENT_OUTAGE_CLOSE = stmt.for_sqlite(stmt.AGENT_OUTAGE_CLOSE)
_AGENT_OUTAGE_OPEN = stmt.for_sqlite(stmt.AGENT_OUTAGE_OPEN)
_AGENT_UPSERT = stmt.for_sqlite(stmt.AGENT_UPSERT)
_COMMAND_RESULT = stmt.for_sqlite(stmt.COMMAND_RESULT)
_SPARKPLUG_BIRTH_UPSERT = stmt.for_sqlite(stmt.SPARKPLUG_BIRTH_UPSERT)
_EVENT_INSERT = stmt.for_sqlite(stmt.EVENT_INSERT)
_DEVICE_OUTAGE_CLOSE = stmt.for_sqlite(stmt.DEVICE_OUTAGE_CLOSE)
_DEVICE_OUTAGE_OPEN = stmt.for_sqlite(stmt.DEVICE_OUTAGE_OPEN)
_DROP_SPAN_UPSERT = stmt.for_sqlite(stmt.DROP_SPAN_UPSERT)
_MACHINE_UPSERT = stmt.for_sqlite(stmt.MACHINE_UPSERT)
_META_UPSERT = stmt.for_sqlite(stmt.META_UPSERT)
_OWNER_UPSERT = stmt.for_sqlite(stmt.OWNER_UPSERT)
_PRODUCED_UPSERT = stmt.for_sqlite(stmt.PRODUCED_UPSERT)

_T = TypeVar("_T")

_ROLLUP_UPSERT = """
INSERT INTO rollup_minute AS r (series_id, bucket, min, max, sum, count, last_ts, last_value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, bucket) DO UPDATE SET
    min = min(r.min, excluded.min),
    max = max(r.max, excluded.max),
    sum = r.sum + excluded.sum,
    count = r.count + excluded.count,
    last_value = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_value
                      ELSE r.last_value END,
    last_ts = max(r.last_ts, excluded.last_ts)
"""

# Text readings per series per minute: completeness counts them (rollups hold numbers only).
_TEXT_UPSERT = """
INSERT INTO text_minute AS c (series_id, bucket, count) VALUES (?, ?, ?)
ON CONFLICT (series_id, bucket) DO UPDATE SET count = c.count + excluded.count
"""


class SqliteStorage:
    """`Storage` on an embedded SQLite file (see module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: int = 90,
        dead_letter_retention_days: int = 30,
        hooks: Sequence[SqliteHook] = (),
    ) -> None:
        self._path = str(path)
        self._hooks = list(hooks)
        self._retention_days = retention_days
        self._dl_retention_days = dead_letter_retention_days
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._series: SeriesIds = {}

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-sqlite")
        await self._run(self._open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash; power loss may lose the last
        # transactions, which publishers replay because their receipts never arrived.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise RuntimeError("SqliteStorage used outside `async with`")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.DataError as exc:
            raise StorageRejected(f"SQLite refused the data: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite: {type(exc).__name__}: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageUnavailable("SQLite connection is closed")
        return self._conn

    def _applied(self) -> set[int] | None:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if row is None:
            return None
        return {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations; return the names applied."""

        def run() -> list[str]:
            db = self._db
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            done = self._applied() or set()
            applied = []
            for mig in load_migrations("sqlite"):
                if mig.version in done:
                    continue
                # executescript commits first; wrap the script so it applies atomically.
                db.executescript(
                    f"BEGIN;\n{mig.sql}\nINSERT INTO schema_migrations (version, name)"
                    f" VALUES ({mig.version}, '{mig.name}');\nCOMMIT;"
                )
                applied.append(mig.name)
            return applied

        return await self._run(run)

    async def check_schema(self) -> None:
        """Raise `SchemaError` unless the database is exactly at the latest known migration."""
        found = await self._run(self._applied)
        known = {m.version for m in load_migrations("sqlite")}
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
        """Raise `StorageUnavailable` unless the database answers."""
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    def _series_ids(self, batch: WriteBatch) -> set[SeriesKey]:
        missing = sorted(missing_series(batch.telemetry, self._series))
        if not missing:
            return set()
        db = self._db
        db.executemany(
            "INSERT INTO series (site, line, machine, tag) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            missing,
        )
        for key in missing:
            row = db.execute(
                "SELECT id FROM series WHERE site = ? AND line = ? AND machine = ? AND tag = ?",
                key,
            ).fetchone()
            self._series.setdefault((key.site, key.line, key.machine), {})[key.tag] = row[0]
        return set(missing)

    def _write(self, batch: WriteBatch) -> WriteResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        created: set[SeriesKey] = set()
        try:
            created = self._series_ids(batch)
            records, _ = to_rows(batch.telemetry, self._series)
            inserted_rows: list[tuple[int, int, float | None]] = []
            inserted: set[int] = set()  # 1-based indices of the readings inserted, for hooks
            for i, rec in enumerate(records, 1):
                # RETURNING yields a row only when the reading was actually inserted.
                row = db.execute(
                    "INSERT INTO readings (series_id, ts, value, value_text, quality)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING series_id, ts, value",
                    rec,
                ).fetchone()
                if row is not None:
                    inserted_rows.append(row)
                    inserted.add(i)
            for resolution, width in BUCKET_MS.items():
                db.executemany(
                    _ROLLUP_UPSERT.replace("rollup_minute", f"rollup_{resolution}"),
                    aggregate(inserted_rows, width),
                )
            db.executemany(_TEXT_UPSERT, text_counts(inserted_rows))
            db.executemany(
                "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason,"
                " message, src) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            db.executemany(
                _MACHINE_UPSERT,
                [
                    (m.site, m.line, m.machine, m.state, m.ts, m.detail, m.payload, m.received_at)
                    for m in batch.machines
                ],
            )
            db.executemany(
                _AGENT_UPSERT,
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
            db.executemany(_PRODUCED_UPSERT, produced_rows(batch.agents))
            db.executemany(_OWNER_UPSERT, owner_rows(batch.agents))
            db.executemany(_DROP_SPAN_UPSERT, drop_rows(batch.agents))
            for e in outage_events(batch.machines, batch.agents):
                if e.kind == "device":
                    sql = _DEVICE_OUTAGE_OPEN if e.opens else _DEVICE_OUTAGE_CLOSE
                else:
                    sql = _AGENT_OUTAGE_OPEN if e.opens else _AGENT_OUTAGE_CLOSE
                db.execute(sql, (*e.key, *((e.reason,) if e.opens else ()), e.at_ms))
            for meta in newest_metas(batch.metas):
                self._replace_meta(meta)
            db.executemany(_COMMAND_RESULT, result_rows(batch.results))
            db.executemany(_SPARKPLUG_BIRTH_UPSERT, birth_rows(batch.births))
            self._events_and_hooks(batch, inserted)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            # Ids created in the rolled-back transaction do not exist; forget them.
            for key in created:
                self._series.get((key.site, key.line, key.machine), {}).pop(key.tag, None)
            raise
        return WriteResult(len(inserted_rows), len(records) - len(inserted_rows))

    def _events_and_hooks(self, batch: WriteBatch, inserted: set[int]) -> None:
        """Store the batch's events; then run the hooks, told what this transaction inserted."""
        db = self._db
        if not self._hooks:
            db.executemany(_EVENT_INSERT, event_rows(batch.events))
            return
        events: set[EventKey] = set()
        for ev in event_rows(batch.events):
            if db.execute(_EVENT_INSERT, ev).rowcount:  # 0: stored before
                events.add((ev[0], ev[1], ev[2], ev[3], ev[4]))
        new = narrow(batch, inserted)
        for hook in self._hooks:
            hook(db, batch, new, events)

    def _replace_meta(self, m: MachineMetaUpdate) -> None:
        key = (m.site, m.line, m.machine)
        kept = self._db.execute(
            _META_UPSERT,
            (*key, m.ts, m.payload, m.received_at, m.quiet_ms, m.scheduled_per_minute),
        ).fetchall()
        if not kept:
            return  # an older message than the one kept
        self._db.execute("DELETE FROM tag_meta WHERE site = ? AND line = ? AND machine = ?", key)
        self._db.executemany(
            "INSERT INTO tag_meta (site, line, machine, tag, unit, description, limit_low,"
            " limit_high, writable, write_min, write_max)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*key, *row) for row in tag_meta_rows(m)],
        )

    async def write(self, batch: WriteBatch) -> WriteResult:
        """Commit telemetry, dead letters and status updates in one transaction."""
        return await self._run(lambda: self._write(batch))

    async def maintain(self, now_ms: int) -> None:
        """Apply retention to readings, rollups, production and dead letters (no partitions)."""
        cutoff = (now_ms // DAY_MS - self._retention_days) * DAY_MS
        dl_cutoff = now_ms - self._dl_retention_days * DAY_MS

        def run() -> None:
            self._db.execute("DELETE FROM readings WHERE ts < ?", (cutoff,))
            self._db.execute("DELETE FROM dead_letters WHERE received_at < ?", (dl_cutoff,))
            self._db.execute("DELETE FROM machine_events WHERE ts < ?", (cutoff,))
            self._db.execute("DELETE FROM produced_minutes WHERE minute < ?", (cutoff,))
            self._db.execute(
                "DELETE FROM alerts WHERE state = 'cleared' AND cleared_ms < ?", (cutoff,)
            )
            # Their transitions too: this connection does not enforce foreign keys (no cascade).
            self._db.execute(
                "DELETE FROM alert_transitions WHERE alert_id NOT IN (SELECT id FROM alerts)"
            )
            self._db.execute("DELETE FROM alert_shelves WHERE until_ms < ?", (cutoff,))
            for table in ("rollup_minute", "rollup_hour", "text_minute"):
                self._db.execute(f"DELETE FROM {table} WHERE bucket < ?", (cutoff,))  # noqa: S608

        await self._run(run)
