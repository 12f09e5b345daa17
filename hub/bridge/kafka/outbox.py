"""The outbox in PostgreSQL: written by the ingest transaction, read and pruned by the relay.

`write_outbox` is the storage transaction hook (`PostgresStorage(hooks=[write_outbox])`): it adds
one row per telemetry batch (and one per dead letter) to `kafka_outbox` in the same transaction
that stores the readings, so a batch is in the outbox if and only if it is committed.

Only readings this transaction actually inserted go to Kafka: a replayed batch (agent republish,
broker redelivery, two instances storing the same batch) adds nothing, so Kafka sees each stored
reading once. Rows a transaction inserted carry its xid in `xmin`; that is how a batch with
duplicates is narrowed to its new readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.bridge.kafka.records import (
    KIND_DEAD_LETTER,
    KIND_TELEMETRY,
    OutboxRow,
    encode_dead_letter,
    encode_readings,
)
from hub.storage.model import ReadingLike, TelemetryBatch, WriteBatch, WriteResult

__all__ = [
    "NOTIFY_CHANNEL",
    "OUTBOX_LOCK",
    "RELAY_LOCK",
    "OutboxLag",
    "fetch_rows",
    "outbox_lag",
    "outbox_values",
    "prune",
    "write_outbox",
]

# Advisory lock ids: "ms" + purpose (the storage uses 0x6D73_0001/2).
OUTBOX_LOCK = 0x6D73_0008  # held from id assignment to commit: id order = commit order
RELAY_LOCK = 0x6D73_0009  # session lock of the one active relay
NOTIFY_CHANNEL = "millstream_outbox"  # wakes the relay at commit (collapsed per transaction)

_INSERT = """
INSERT INTO kafka_outbox (kind, site, line, machine, src, seq, n, body)
SELECT kind, site, line, machine, src, seq, n, body
FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::integer[], $8::text[])
     WITH ORDINALITY AS t(kind, site, line, machine, src, seq, n, body, i)
ORDER BY i
"""

# Indices (1-based, over the transaction's readings in order) of readings whose row this very
# transaction inserted. xmin is 32 bits; txid_current() carries an epoch above them.
_INSERTED_BY_US = """
SELECT k.i FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     WITH ORDINALITY AS k(site, line, machine, tag, ts, i)
JOIN series s USING (site, line, machine, tag)
JOIN readings r ON r.series_id = s.id AND r.ts = k.ts
WHERE r.xmin = (txid_current() % 4294967296)::text::xid
"""

_Row = tuple[int, str | None, str | None, str | None, str | None, int | None, int, str]


def outbox_values(batch: WriteBatch, inserted: set[int] | None) -> list[_Row]:
    """Outbox rows for a committed write (pure); `inserted` = 1-based reading indices to keep."""
    rows: list[_Row] = []
    i = 0
    seen: set[tuple[str, str, str, str, int]] = set()
    for t in batch.telemetry:
        readings: Sequence[ReadingLike] = t.readings
        if inserted is not None:
            keep: list[ReadingLike] = []
            for r in t.readings:
                i += 1
                identity = (t.site, t.line, t.machine, r.tag, r.ts)
                # The same identity twice in one transaction was inserted once: send it once.
                if i in inserted and identity not in seen:
                    seen.add(identity)
                    keep.append(r)
            readings = keep
        if readings:
            n, body = encode_readings(readings)
            rows.append((KIND_TELEMETRY, t.site, t.line, t.machine, t.src, t.seq, n, body))
    for d in batch.dead_letters:
        rows.append((KIND_DEAD_LETTER, None, None, None, d.src, None, 1, encode_dead_letter(d)))
    return rows


async def _inserted_indices(
    conn: asyncpg.Connection, telemetry: Sequence[TelemetryBatch]
) -> set[int]:
    cols: tuple[list[Any], ...] = ([], [], [], [], [])
    for t in telemetry:
        for r in t.readings:
            cols[0].append(t.site)
            cols[1].append(t.line)
            cols[2].append(t.machine)
            cols[3].append(r.tag)
            cols[4].append(r.ts)
    return {row[0] for row in await conn.fetch(_INSERTED_BY_US, *cols)}


async def write_outbox(conn: asyncpg.Connection, batch: WriteBatch, result: WriteResult) -> None:
    """Storage transaction hook: record the batch's new readings (and dead letters) for Kafka."""
    if result.inserted == 0 and not batch.dead_letters:
        return
    inserted = None
    if result.duplicates:
        inserted = await _inserted_indices(conn, batch.telemetry)
    rows = outbox_values(batch, inserted)
    if not rows:
        return
    # Held until commit: the next transaction gets its ids only after this one is visible.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
    await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)))
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def fetch_rows(conn: asyncpg.Connection, after: int, limit: int) -> list[OutboxRow]:
    """Outbox rows with id > after, in id order."""
    records = await conn.fetch(
        "SELECT id, kind, site, line, machine, src, seq, n, body FROM kafka_outbox"
        " WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
    )
    return [OutboxRow(*r) for r in records]


async def prune(conn: asyncpg.Connection, cursor: int) -> None:
    """Delete rows whose records Kafka holds (id <= the committed cursor)."""
    await conn.execute("DELETE FROM kafka_outbox WHERE id <= $1", cursor)


@dataclass(frozen=True, slots=True)
class OutboxLag:
    """What waits for Kafka: rows, readings, and the commit time of the oldest row (epoch ms)."""

    rows: int
    readings: int
    oldest_ms: int | None

    def age_s(self, now_ms: int) -> float:
        """Seconds the oldest row has waited (0 when the outbox is empty)."""
        return 0.0 if self.oldest_ms is None else max(0.0, (now_ms - self.oldest_ms) / 1000)


async def outbox_lag(conn: asyncpg.Connection) -> OutboxLag:
    """Measure the outbox (it holds only what Kafka does not yet have, up to one prune)."""
    row = await conn.fetchrow(
        "SELECT count(*), coalesce(sum(n), 0), min(created_at) FROM kafka_outbox"
    )
    assert row is not None
    return OutboxLag(int(row[0]), int(row[1]), row[2])
