"""What the hub's one-at-a-time tasks share (the Kafka relay, the alert evaluator): a plain
PostgreSQL connection of their own, a session-level advisory lock that makes one instance the
active one (released when its connection ends, also when its process dies), and waits that a
stop cuts short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg

from hub.errors import StorageUnavailable

__all__ = ["PG_ERRORS", "STANDBY_POLL_S", "connect", "lead", "wait", "wait_any"]

STANDBY_POLL_S = 5.0
PG_TIMEOUT_S = 30.0

# What a lost or refusing PostgreSQL raises; InternalClientError: the server ended the session
# between two protocol steps (see _TRANSIENT in hub/storage/postgres.py).
PG_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


async def connect(dsn: str, who: str) -> asyncpg.Connection:
    """A connection of `who`'s own; `StorageUnavailable` naming it when PostgreSQL is away."""
    try:
        async with asyncio.timeout(PG_TIMEOUT_S):
            conn: asyncpg.Connection = await asyncpg.connect(dsn)
    except PG_ERRORS as exc:
        raise StorageUnavailable(f"{who} cannot reach PostgreSQL: {exc}") from exc
    return conn


async def lead(
    conn: asyncpg.Connection, lock: int, stop: asyncio.Event, standby: Callable[[], None]
) -> bool:
    """Hold `lock` on `conn` (True), calling `standby` each time another instance has it;
    False when `stop` is set first."""
    while not stop.is_set():
        async with asyncio.timeout(PG_TIMEOUT_S):
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                return True
        standby()
        await wait(stop, STANDBY_POLL_S)
    return False


async def wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def wait_any(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Sleep until `wake` or `stop` is set, at most `seconds`."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
