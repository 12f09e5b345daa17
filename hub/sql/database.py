"""One async `Database` over asyncpg or sqlite3, so read-side code writes each query once.

Queries use PostgreSQL's numbered parameters (`$1`); on SQLite they become `?1`, which SQLite
understands natively. Code that needs a dialect-specific statement checks `db.dialect`.
Failures map to `StorageUnavailable` (chained), as the ingest's storage backends do.

The API opens its own connections rather than sharing the ingest's pool: a slow dashboard query
must never hold a connection an ingest commit is waiting for.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import asyncpg

from hub.errors import StorageUnavailable

__all__ = ["Database", "Dialect", "open_database"]

Dialect = Literal["postgresql", "sqlite"]
Row = dict[str, Any]
_T = TypeVar("_T")
_PARAM = re.compile(r"\$(\d+)")


class Database(Protocol):
    """Fetch rows as dicts; execute statements; each call is its own transaction."""

    @property
    def dialect(self) -> Dialect: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> None: ...


class _Postgres:
    dialect: Dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s

    async def _call(self, fn: Callable[[asyncpg.Connection], Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout), self._pool.acquire() as conn:
                return await fn(conn)
        # InternalClientError: the server ended the session mid-statement (see _TRANSIENT in
        # hub/storage/postgres.py); the pool drops that connection.
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as exc:
            raise StorageUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = await self._call(lambda conn: conn.fetch(sql, *args))
        return [dict(r) for r in rows]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._call(lambda conn: conn.execute(sql, *args))


class _Sqlite:
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    async def _run(self, fn: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite: {type(exc).__name__}: {exc}") from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        text = _PARAM.sub(r"?\1", sql)

        def run() -> list[Row]:
            cur = self._conn.execute(text, args)
            names = [c[0] for c in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        return await self._run(run)

    async def execute(self, sql: str, *args: Any) -> None:
        text = _PARAM.sub(r"?\1", sql)
        await self._run(lambda: self._conn.execute(text, args))


@asynccontextmanager
async def open_database(
    url: str, *, max_connections: int = 4, timeout_s: float = 30.0
) -> AsyncIterator[Database]:
    """Open `postgresql://…` (a small pool) or `sqlite:///path` (one connection on a thread)."""
    if urlsplit(url).scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-api-sqlite")

        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # The ingest holds the write lock for a commit at a time; wait for it, don't fail.
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn

        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(executor, connect)
        try:
            yield _Sqlite(conn, executor)
        finally:
            await loop.run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        return
    pool = await asyncpg.create_pool(
        url.replace("postgres://", "postgresql://", 1),
        min_size=0,  # start (and answer 503) even while PostgreSQL is down
        max_size=max_connections,
        command_timeout=timeout_s,
        server_settings={"application_name": "millstream-hub-api"},
    )
    try:
        yield _Postgres(pool, timeout_s)
    finally:
        try:
            async with asyncio.timeout(10):
                await pool.close()
        except TimeoutError:
            pool.terminate()
