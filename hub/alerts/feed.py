"""The alert feed: committed readings and machine events for the evaluator, written in the
ingest transaction.

`write_feed` is a storage transaction hook, like the Kafka outbox's: one `alert_feed` row per
telemetry batch holding the readings this transaction inserted, and one per events batch holding
the events it inserted (a replay adds nothing). Writers take no lock: each row carries its
transaction's id, and the evaluator reads in (xid, id) order below the horizon of transactions
still running (`hub.storage.snapshot_order`, as the Kafka relays read the outbox), so no row
commits behind its position. The evaluator sees a row only once its transaction has committed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

import asyncpg

from hub.alerts.engine import Event
from hub.bridge.kafka.records import encode_event, encode_readings
from hub.storage.committed import EventKey, NewReadings, event_key, new_events, new_readings
from hub.storage.model import WriteBatch, WriteResult
from hub.storage.snapshot_order import Position, fetch_after

__all__ = [
    "FEED_CHANNEL",
    "KIND_EVENTS",
    "KIND_READINGS",
    "FeedRow",
    "decode_body",
    "decode_events",
    "feed_rows",
    "fetch_feed",
    "fetch_feed_sqlite",
    "write_feed",
    "write_feed_sqlite",
]

FEED_CHANNEL = "millstream_alert_feed"
KIND_READINGS = 0
KIND_EVENTS = 1


def _now_ms() -> int:
    """Wall clock in epoch milliseconds: a row's commit time on SQLite (PostgreSQL's `now()`)."""
    return time.time_ns() // 1_000_000


_INSERT_SQLITE = """
INSERT INTO alert_feed (created_at, kind, site, line, machine, n, body)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

_INSERT = """
INSERT INTO alert_feed (kind, site, line, machine, n, body)
SELECT kind, site, line, machine, n, body
FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::text[])
     WITH ORDINALITY AS t(kind, site, line, machine, n, body, i)
ORDER BY i
"""


# kind, site, line, machine, n, body: one feed row.
_Row = tuple[int, str, str, str, int, str]


def feed_rows(new: NewReadings, batch: WriteBatch, stored: set[EventKey]) -> list[_Row]:
    """The feed rows of a committed write (pure): its new readings per telemetry batch, and the
    events of `stored` (those it inserted) per events batch."""
    rows = []
    for t, readings in new:
        if readings:
            n, body = encode_readings(readings)
            rows.append((KIND_READINGS, t.site, t.line, t.machine, n, body))
    stored = set(stored)
    for b in batch.events:
        lines = []
        for e in b.events:
            key = event_key(b, e)
            if key in stored:
                stored.discard(key)  # the same event twice in one transaction was stored once
                lines.append(encode_event(b, e))
        if lines:
            rows.append((KIND_EVENTS, b.site, b.line, b.machine, len(lines), "\n".join(lines)))
    return rows


async def write_feed(conn: asyncpg.Connection, batch: WriteBatch, result: WriteResult) -> None:
    """Storage transaction hook: the batch's new readings and events, for the alert evaluator."""
    rows = feed_rows(await new_readings(conn, batch, result), batch, await new_events(conn, batch))
    if not rows:
        return
    await conn.execute(_INSERT, *(list(col) for col in zip(*rows, strict=True)))
    await conn.execute("SELECT pg_notify($1, '')", FEED_CHANNEL)


def write_feed_sqlite(
    db: sqlite3.Connection, batch: WriteBatch, new: NewReadings, stored: set[EventKey]
) -> None:
    """SQLite storage transaction hook (on the storage's thread): the same rows. SQLite has one
    writer at a time, so the feed's id order is commit order without any lock."""
    rows = feed_rows(new, batch, stored)
    if rows:
        db.executemany(_INSERT_SQLITE, [(_now_ms(), *row) for row in rows])


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One committed batch of a machine's new readings (or events), as the evaluator reads it."""

    id: int
    created_at: int
    site: str
    line: str
    machine: str
    body: str
    kind: int = KIND_READINGS
    xid: int = 0  # the writing transaction's id (PostgreSQL): with `id`, the row's place

    @property
    def position(self) -> Position:
        """Where a reader stands once it has read this row."""
        return (self.xid, self.id)


def decode_body(body: str) -> list[tuple[str, int, float | int | bool | str, str]]:
    """(tag, ts, v, q) of each reading of a feed body, in ts order (one JSON parse per body)."""
    # Each line is an object's inside; JSON text never holds a raw newline.
    items = json.loads("[{" + body.replace("\n", "},{") + "}]")
    return [(x["tag"], x["ts"], x["v"], x["q"]) for x in items]


def decode_events(body: str) -> list[Event]:
    """The events of a feed body of kind `KIND_EVENTS`, in the order they were stored."""
    out = []
    for text in body.split("\n"):
        x = json.loads(text)
        out.append(
            Event(x["id"], x["ts"], x["source"], x["type"], x["severity"], x["message"], x["state"])
        )
    return out


async def fetch_feed(conn: asyncpg.Connection, after: Position, limit: int) -> list[FeedRow]:
    """Feed rows past `after` in (xid, id) order, of transactions no running one can precede."""
    records = await fetch_after(
        conn, "alert_feed", "id, created_at, site, line, machine, body, kind", after, limit
    )
    return [FeedRow(*r) for r in records]


def fetch_feed_sqlite(db: sqlite3.Connection, after: Position, limit: int) -> list[FeedRow]:
    """SQLite: feed rows past `after` in id order, which is commit order there (blocking)."""
    records = db.execute(
        "SELECT id, created_at, site, line, machine, body, kind FROM alert_feed"
        " WHERE id > ? ORDER BY id LIMIT ?",
        (after[1], limit),
    ).fetchall()
    return [FeedRow(*r) for r in records]
