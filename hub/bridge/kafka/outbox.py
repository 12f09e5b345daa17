"""The outbox in PostgreSQL: written by the ingest transaction, read and pruned by the relay.

`write_outbox` is the storage transaction hook (`PostgresStorage(hooks=[write_outbox])`): it adds
one row per telemetry batch (and one per dead letter) to `kafka_outbox` in the same transaction
that stores the readings, so a batch is in the outbox if and only if it is committed.

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

__all__ = [
    "NOTIFY_CHANNEL",
    "OUTBOX_LOCK",
    "RELAY_LOCK",
    "OutboxLag",
    "fetch_rows",
    "outbox_lag",
    "outbox_values",
    "prune",
    "write_alerts",
    "write_outbox",
]

# Advisory lock ids: "ms" + purpose (the storage uses 0x6D73_0001/2).
OUTBOX_LOCK = 0x6D73_0008  # held from id assignment to commit: id order = commit order
RELAY_LOCK = 0x6D73_0009  # session lock of the one active relay
NOTIFY_CHANNEL = "millstream_outbox"  # wakes the relay at commit (collapsed per transaction)

_INSERT = """
INSERT INTO kafka_outbox (kind, site, line, machine, src, seq, n, body, trace)
SELECT kind, site, line, machine, src, seq, n, body, trace
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
    # Held until commit: the next transaction gets its ids only after this one is visible.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
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
    await conn.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
    await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)))
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def fetch_rows(conn: asyncpg.Connection, after: int, limit: int) -> list[OutboxRow]:
    """Outbox rows with id > after, in id order."""
    records = await conn.fetch(
        "SELECT id, kind, site, line, machine, src, seq, n, body, trace FROM kafka_outbox"
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
