"""PostgreSQL through asyncpg: a round trip, and committed rows surviving a killed server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in "ZX"


async def test_kill_is_a_crash_no_backend_outlives_it(
    postgres_factory: Callable[..., Postgres],
) -> None:
    """Backends run in sessions of their own (setsid), so killing the postmaster's group alone
    leaves them serving: a client's next statement could be answered, then cut short by the
    backend's FATAL goodbye, which asyncpg can misread ("cannot switch to state 12"). A crash
    takes every process at once; the client only sees its connection gone."""
    server = postgres_factory()
    conn = await asyncpg.connect(server.dsn)
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    server.kill()
    assert not _running(backend)
    try:
        with pytest.raises(asyncpg.ConnectionDoesNotExistError) as lost:
            await conn.fetchval("SELECT 2")
    finally:
        conn.terminate()
    assert "postmaster" not in str(lost.value)
    assert "unexpected postmaster exit" not in server.log_path.read_text()
