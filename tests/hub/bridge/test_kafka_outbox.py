"""The outbox is written in the ingest transaction: new readings only, one row per batch."""

from __future__ import annotations

import json
import time

import asyncpg
from bridgetest import batch, outbox_storage, unique, write

from hub.storage import DeadLetter, WriteBatch


async def _rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT * FROM kafka_outbox ORDER BY id"))
    finally:
        await conn.close()


async def test_one_row_per_batch_and_replays_add_nothing(pg_dsn: str) -> None:
    t0 = time.time_ns() // 1_000_000 - 60_000
    site = unique("s")
    async with outbox_storage(pg_dsn) as storage:
        await storage.migrate()
        b1 = batch(site, "m1", "agent", 1, t0, 100, tags=("a", "b"))
        b2 = batch(site, "m2", "agent", 2, t0, 50)
        await write(storage, b1, b2)
        rows = await _rows(pg_dsn)
        assert [(r["machine"], r["seq"], r["n"]) for r in rows] == [("m1", 1, 200), ("m2", 2, 50)]

        # The same batch again (a republish), and in another transaction: nothing new for Kafka.
        await write(storage, b1)
        assert len(await _rows(pg_dsn)) == 2

        # Overlap: half old, half new readings; and a repeated identity inside one transaction.
        b3 = batch(site, "m2", "agent", 3, t0 + 25, 50)
        await write(storage, b3, b3)
        rows = await _rows(pg_dsn)
        assert [(r["seq"], r["n"]) for r in rows[2:]] == [(3, 25)]
        first = json.loads("{" + rows[2]["body"].split("\n")[0] + "}")
        assert first["ts"] == t0 + 50

        await storage.write(
            WriteBatch(dead_letters=[DeadLetter("ms/v1/x/y/z/telemetry", b"{", "bad_json", "x", 1)])
        )
        rows = await _rows(pg_dsn)
        assert rows[-1]["kind"] == 1
        assert json.loads(rows[-1]["body"])["reason"] == "bad_json"
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
