"""Which readings (and machine events) a PostgreSQL ingest transaction actually inserted (for
transaction hooks).

A replayed batch (agent republish, broker redelivery, two instances storing the same batch)
inserts nothing, and a batch with some duplicates inserts only its new readings. Consumers of
committed readings (the Kafka outbox, the alert feed) take exactly these, so each stored reading
reaches them once. Rows a transaction inserted carry its xid in `xmin`: that is how a batch
with duplicates is narrowed to its new readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.storage.model import (
    EventBatch,
    EventRow,
    ReadingLike,
    TelemetryBatch,
    WriteBatch,
    WriteResult,
)

__all__ = ["EventKey", "NewReadings", "event_key", "narrow", "new_events", "new_readings"]

# Each telemetry batch with the readings of it this transaction inserted (possibly none).
NewReadings = list[tuple[TelemetryBatch, Sequence[ReadingLike]]]

# Indices (1-based, over the transaction's readings in order) of readings whose row this very
# transaction inserted. xmin is 32 bits; txid_current() carries an epoch above them.
_INSERTED_BY_US = """
SELECT k.i FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     WITH ORDINALITY AS k(site, line, machine, tag, ts, i)
JOIN series s USING (site, line, machine, tag)
JOIN readings r ON r.series_id = s.id AND r.ts = k.ts
WHERE r.xmin = (txid_current() % 4294967296)::text::xid
"""


# The events of a transaction's batches whose row this very transaction inserted (a batch sent
# again inserts none).
_NEW_EVENTS = """
SELECT e.site, e.line, e.machine, e.event_id, e.ts FROM machine_events e
JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     AS k(site, line, machine, event_id, ts) USING (site, line, machine, event_id, ts)
WHERE e.xmin = (txid_current() % 4294967296)::text::xid
"""
# site, line, machine, event id, ts: a stored event's identity.
EventKey = tuple[str, str, str, str, int]


def event_key(b: EventBatch, e: EventRow) -> EventKey:
    """The identity of event `e` of batch `b` in `machine_events`."""
    return (b.site, b.line, b.machine, e.id, e.ts)


async def new_events(conn: asyncpg.Connection, batch: WriteBatch) -> set[EventKey]:
    """The events of `batch` this transaction inserted (inside it)."""
    if not batch.events:
        return set()
    keys = [event_key(b, e) for b in batch.events for e in b.events]
    found = await conn.fetch(_NEW_EVENTS, *(list(col) for col in zip(*keys, strict=True)))
    return {(r[0], r[1], r[2], r[3], r[4]) for r in found}


def narrow(batch: WriteBatch, inserted: set[int] | None) -> NewReadings:
    """Keep the readings whose 1-based index is in `inserted` (None: all of them). Pure."""
    if inserted is None:
        return [(t, t.readings) for t in batch.telemetry]
    out: NewReadings = []
    i = 0
    seen: set[tuple[str, str, str, str, int]] = set()
    for t in batch.telemetry:
        keep: list[ReadingLike] = []
        for r in t.readings:
            i += 1
            identity = (t.site, t.line, t.machine, r.tag, r.ts)
            # The same identity twice in one transaction was inserted once: take it once.
            if i in inserted and identity not in seen:
                seen.add(identity)
                keep.append(r)
        out.append((t, keep))
    return out


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


async def new_readings(
    conn: asyncpg.Connection, batch: WriteBatch, result: WriteResult
) -> NewReadings:
    """The readings of `batch` this transaction inserted, per telemetry batch (inside it)."""
    if result.inserted == 0:
        return []
    inserted = None
    if result.duplicates:
        inserted = await _inserted_indices(conn, batch.telemetry)
    return narrow(batch, inserted)
