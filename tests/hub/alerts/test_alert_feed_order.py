"""The alert feed takes no lock: two ingest transactions of one series commit out of id order
(the first to insert its feed row commits last), and the evaluator still evaluates each reading
once, in time order. Real PostgreSQL ingest transactions (`PostgresStorage` with the feed hook),
the real evaluator.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Sequence

import asyncpg
import pytest

from hub.alerts.engine import Transition
from hub.alerts.evaluator import AlertEvaluator
from hub.alerts.feed import fetch_feed, write_feed
from hub.alerts.rules import AlertsConfig
from hub.alerts.store import Checkpoint, load_checkpoint, save_checkpoint
from hub.storage import CompactReading, PostgresStorage, TelemetryBatch, WriteBatch, WriteResult
from hub.storage.migrations import load_migrations
from hub.storage.snapshot_order import fetch_after_sql
from tests.hub.alerts.test_alerts_instances import rows

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOUR_MS = 3_600_000
ALERTS = AlertsConfig.model_validate(
    {
        # The readings are hours apart (so the two transactions touch different rollup rows and
        # neither waits for the other): none of them is late here.
        "late_after": "1d",
        "reorder": "0ms",  # only the feed's own order keeps them in place
        "rules": [{"name": "hot", "kind": "threshold", "match": {"tag": "temp"}, "above": 80}],
    }
)


def batch(seq: int, ts: int, value: float) -> WriteBatch:
    readings = [CompactReading("temp", ts, value, "good")]
    return WriteBatch(telemetry=[TelemetryBatch("s", "l1", "oven", "src", seq, readings)])


async def test_transactions_committing_out_of_id_order_are_evaluated_once_in_time_order(
    pg_dsn: str,
) -> None:
    gate = asyncio.Event()
    in_hook = asyncio.Event()

    async def hold_the_first(conn: asyncpg.Connection, b: WriteBatch, _r: WriteResult) -> None:
        if b.telemetry[0].seq == 1:  # feed row written; commit only when let go
            in_hook.set()
            await gate.wait()

    seen: list[Transition] = []

    def collect(out: Sequence[Transition]) -> None:
        seen.extend(out)

    now = time.time_ns() // 1_000_000
    t0 = now - 3 * HOUR_MS
    async with PostgresStorage(pg_dsn, hooks=[write_feed, hold_the_first]) as storage:
        await storage.migrate()
        evaluator = AlertEvaluator(ALERTS, pg_dsn, {}, on_transitions=collect)
        stop = asyncio.Event()
        running = asyncio.create_task(evaluator.run(stop))
        try:
            # First: the crossing (feed id 1), held open. Second: back below, committed at once.
            first = asyncio.create_task(storage.write(batch(1, t0, 95.0)))
            await asyncio.wait_for(in_hook.wait(), 10)
            assert (await storage.write(batch(2, t0 + HOUR_MS, 20.0))).inserted == 1
            feed = await rows(pg_dsn, "SELECT id FROM alert_feed ORDER BY id")
            assert [r["id"] for r in feed] == [2]  # the first's row is not committed yet
            await asyncio.sleep(1.5)  # the evaluator polls every 0.5 s; it must wait for id 1
            assert evaluator.evaluated == 0
            assert seen == []
            gate.set()
            assert (await first).inserted == 1
            deadline = time.monotonic() + 20
            while evaluator.evaluated < 2:
                assert time.monotonic() < deadline, f"evaluated {evaluator.evaluated} of 2"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # nothing more comes
        finally:
            stop.set()
            await running
    assert evaluator.evaluated == 2
    assert [(t.state, t.ts, t.found_late) for t in seen] == [
        ("active", t0, False),
        ("cleared", t0 + HOUR_MS, False),
    ]
    stored = await rows(pg_dsn, "SELECT state, ts FROM alert_transitions ORDER BY ts, state")
    assert [(r["state"], r["ts"]) for r in stored] == [("active", t0), ("cleared", t0 + HOUR_MS)]
    assert evaluator.cursor is not None
    assert evaluator.cursor[1] == 2


async def test_the_migration_resumes_a_checkpoint_of_the_locked_feed_where_it_was(
    pg_dsn: str,
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        migrations = load_migrations("postgresql")
        for m in migrations:
            if m.version < 22:
                await conn.execute(m.sql)
        # The locked era: ids 1-3 committed, the evaluator's checkpoint at id 2.
        await conn.execute(
            "INSERT INTO alert_feed (site, line, machine, n, body)"
            " SELECT 's', 'l', 'm' || i, 1, '' FROM generate_series(1, 3) AS i"
        )
        state = zlib.compress(json.dumps({"engine": "state"}).encode())
        await conn.execute(
            "INSERT INTO alert_checkpoint (id, cursor, state, saved_at) VALUES (1, 2, $1, 0)", state
        )
        for m in migrations:
            if m.version >= 22:
                await conn.execute(m.sql)
        await conn.execute("INSERT INTO alert_feed (site, line, machine, n, body)"
                           " VALUES ('s', 'l', 'm4', 1, '')")  # fmt: skip
        cp = await load_checkpoint(conn)
        assert cp.cursor == (0, 2)
        assert cp.state == {"engine": "state"}
        # Neither id 1-2 again nor id 3 skipped; the new row after every old one.
        fed = await fetch_feed(conn, cp.cursor, 10)
        assert [r.machine for r in fed] == ["m3", "m4"]
        assert fed[0].xid == 0
        assert fed[1].xid > 0
        await save_checkpoint(conn, Checkpoint(fed[0].position, {}), 0)
        left = await conn.fetch("SELECT machine FROM alert_feed ORDER BY id")
        assert [r["machine"] for r in left] == ["m4"]
        assert [r.machine for r in await fetch_feed(conn, fed[0].position, 10)] == ["m4"]
    finally:
        await conn.close()


async def test_the_feed_and_the_outbox_are_read_along_their_index_not_sorted(pg_dsn: str) -> None:
    # A backlog (an evaluator or relay behind) must cost a read its LIMIT rows, not a sort of
    # everything past the position; `ORDER BY xid` once named the bigint output column instead.
    async with PostgresStorage(pg_dsn) as storage:
        await storage.migrate()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO alert_feed (site, line, machine, n, body)"
            " SELECT 's', 'l', 'm', 1, '' FROM generate_series(1, 20000)"
        )
        await conn.execute(
            "INSERT INTO kafka_outbox (kind, site, line, machine, n, body, shard)"
            " SELECT 0, 's', 'l', 'm', 1, '', i % 8 FROM generate_series(1, 100000) AS i"
        )
        await conn.execute("ANALYZE alert_feed, kafka_outbox")
        for table, where, args in (("alert_feed", "", ()), ("kafka_outbox", "shard = $1", (3,))):
            sql = fetch_after_sql(table, "id", where=where, nargs=len(args))
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args, "0", 0, 2000))
            assert "Sort" not in plan, plan
            assert "Index" in plan, plan
    finally:
        await conn.close()
