"""The outbox in PostgreSQL: written by the ingest transaction, read and pruned by the relays.

`write_outbox` is the storage transaction hook (`PostgresStorage(hooks=[write_outbox])`): it adds
one row per telemetry batch (and one per dead letter) to `kafka_outbox` in the same transaction
that stores the readings, so a batch is in the outbox if and only if it is committed.

Writers take no lock (migration 0021 says why and how): each row carries its transaction's id
and a shard (a hash of its machine), and a relay reads a shard in (xid, id) order, only below
the horizon of transactions still running, so nothing commits behind a relay's cursor
(`hub.storage.snapshot_order`, shared with the alert feed).

Only readings this transaction actually inserted go to Kafka (`hub.storage.committed`): a
replayed batch adds nothing, so Kafka sees each stored reading once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.bridge.kafka.records import (
    KIND_ALERT,
    KIND_DEAD_LETTER,
    KIND_EVENT,
    KIND_TELEMETRY,
    OutboxRow,
    encode_dead_letter,
    encode_event,
    encode_readings,
)
from hub.storage.committed import (
    EventKey,
    NewReadings,
    event_key,
    narrow,
    new_events,
    new_readings,
)
from hub.storage.model import WriteBatch, WriteResult
from hub.storage.snapshot_order import Position, delete_through, fetch_after

__all__ = [
    "MAX_SHARDS",
    "NOTIFY_CHANNEL",
    "RELAY_CLASS",
    "SHARD_CLASS",
    "OutboxLag",
    "Position",
    "fetch_rows",
    "outbox_lag",
    "outbox_values",
    "prune",
    "set_shard_count",
    "shard_count",
    "write_alerts",
    "write_outbox",
]

# Two-key advisory locks (class, id), "ms" + purpose as the class (the storage uses single keys
# 0x6D73_0001/2). A relay holds (RELAY_CLASS, its backend pid) while it runs, so relays can count
# each other, and (SHARD_CLASS, shard) on the connection that relays that shard.
RELAY_CLASS = 0x6D73_0009
SHARD_CLASS = 0x6D73_000A
NOTIFY_CHANNEL = "millstream_outbox"  # wakes the relays at commit (collapsed per transaction)
MAX_SHARDS = 256

_COLUMNS = "id, kind, site, line, machine, src, seq, n, body, trace"

_INSERT = """
INSERT INTO kafka_outbox (kind, site, line, machine, src, seq, n, body, trace, shard)
SELECT kind, site, line, machine, src, seq, n, body, trace,
       -- machine rows by their machine (its order lives in one shard), the rest by publisher
       (hashtext(coalesce(site || '/' || line || '/' || machine, src, '')) & 2147483647)
         % (SELECT shards FROM kafka_outbox_settings)
FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::integer[], $8::text[], $9::text[])
     WITH ORDINALITY AS t(kind, site, line, machine, src, seq, n, body, trace, i)
ORDER BY i
"""

_Row = tuple[int, str | None, str | None, str | None, str | None, int | None, int, str, str | None]


def outbox_values(
    batch: WriteBatch, inserted: set[int] | None, new_events: set[EventKey] | None = None
) -> list[_Row]:
    """Outbox rows for a committed write (pure); `inserted` = 1-based reading indices to keep,
    `new_events` the events to keep (None: every one)."""
    return _rows(narrow(batch, inserted), batch, new_events)


def _rows(new: NewReadings, batch: WriteBatch, new_events: set[EventKey] | None) -> list[_Row]:
    rows: list[_Row] = []
    for t, readings in new:
        if readings:
            n, body = encode_readings(readings)
            row = (KIND_TELEMETRY, t.site, t.line, t.machine, t.src, t.seq, n, body, t.trace)
            rows.append(row)
    seen: set[EventKey] = set()
    for b in batch.events:
        for e in b.events:
            key = event_key(b, e)
            if (new_events is None or key in new_events) and key not in seen:
                seen.add(key)  # the same event twice in one transaction was stored once
                body = encode_event(b, e)
                rows.append((KIND_EVENT, b.site, b.line, b.machine, b.src, b.seq, 1, body, None))
    for d in batch.dead_letters:
        body = encode_dead_letter(d)
        rows.append((KIND_DEAD_LETTER, None, None, None, d.src, None, 1, body, None))
    return rows


async def write_outbox(conn: asyncpg.Connection, batch: WriteBatch, result: WriteResult) -> None:
    """Storage transaction hook: record the batch's new readings (and dead letters) for Kafka."""
    if result.inserted == 0 and not batch.dead_letters and not batch.events:
        return
    # Kafka gets each stored event once, as each stored reading: a batch sent again adds none.
    rows = _rows(await new_readings(conn, batch, result), batch, await new_events(conn, batch))
    if not rows:
        return
    await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)))
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def write_alerts(conn: asyncpg.Connection, bodies: Sequence[Mapping[str, Any]]) -> None:
    """Queue alert transitions for the alerts topic (inside the caller's transaction: the alert
    evaluator deletes the notifications it hands over in the same one, so each is relayed once)."""
    rows = [
        (KIND_ALERT, b["site"], b["line"], b["machine"], None, None, 1,
         json.dumps(b, separators=(",", ":"), ensure_ascii=False), None)
        for b in bodies
    ]  # fmt: skip
    if not rows:
        return
    await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)))
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def fetch_rows(
    conn: asyncpg.Connection, shard: int, after: Position, limit: int
) -> list[OutboxRow]:
    """Rows of `shard` past `after`, in (xid, id) order, of transactions that ended before
    every transaction still running began: what no later commit can ever precede."""
    records = await fetch_after(
        conn, "kafka_outbox", _COLUMNS, after, limit, where="shard = $1", args=(shard,)
    )
    return [OutboxRow(*r) for r in records]


async def prune(conn: asyncpg.Connection, shard: int, cursor: Position) -> None:
    """Delete `shard`'s rows whose records Kafka holds (up to the committed cursor)."""
    await delete_through(conn, "kafka_outbox", cursor, where="shard = $1", args=(shard,))


async def shard_count(conn: asyncpg.Connection) -> int:
    """How many shards the outbox has (chosen at migrate time)."""
    return int(await conn.fetchval("SELECT shards FROM kafka_outbox_settings"))


async def set_shard_count(conn: asyncpg.Connection, shards: int) -> bool:
    """Change the shard count; False (and nothing changed) unless the outbox is empty and no
    relay is running: a machine's rows must never be in two shards at once (docs/kafka.md)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be 1 … {MAX_SHARDS}")
    async with conn.transaction():
        # Writers wait for the moment this takes: none inserts under the old count after it.
        await conn.execute("LOCK TABLE kafka_outbox_settings, kafka_outbox IN EXCLUSIVE MODE")
        busy = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM kafka_outbox) OR EXISTS (SELECT 1 FROM pg_locks"
            " WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted)",
            RELAY_CLASS,
        )
        if busy:
            return False
        await conn.execute("UPDATE kafka_outbox_settings SET shards = $1", shards)
    return True


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
