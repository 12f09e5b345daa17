"""PostgreSQL through asyncpg: a round trip, and committed rows surviving a killed server."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from tests.harness import Postgres

pytestmark = pytest.mark.services


async def test_asyncpg_round_trip(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE readings (tag text, ts bigint, v double precision)")
        await conn.executemany(
            "INSERT INTO readings VALUES ($1, $2, $3)",
            [("spindle_temp", 1763900000123, 85.4), ("spindle_temp", 1763900001123, 85.6)],
        )
        rows = await conn.fetch("SELECT tag, ts, v FROM readings ORDER BY ts")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("spindle_temp", 1763900000123, 85.4),
        ("spindle_temp", 1763900001123, 85.6),
    ]


async def test_pg_dsn_is_a_fresh_database(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert tables == 0


async def test_committed_rows_survive_kill(postgres_factory: Callable[..., Postgres]) -> None:
    server = postgres_factory()
    conn = await asyncpg.connect(server.dsn)
    await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
    server.kill()
    with pytest.raises((asyncpg.PostgresError, OSError)):
        await conn.fetchval("SELECT 1")
    conn.terminate()

    server.start()  # crash recovery replays the WAL

    conn = await asyncpg.connect(server.dsn)
    try:
        assert await conn.fetchval("SELECT sum(n) FROM t") == 3
    finally:
        await conn.close()
