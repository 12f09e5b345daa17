"""PostgreSQL ending a session between two protocol steps is an outage, never a rejected batch.

A fast shutdown, a failover or pg_terminate_backend makes the server send `FATAL` and close.
If that message lands while asyncpg sits between a statement's Parse/Describe and its
Bind/Execute, asyncpg raises `InternalClientError: cannot switch to state 12; another operation
(2) is in progress` (MagicStack/asyncpg#1069) instead of a connection error. Storage must map it
to `StorageUnavailable` (the ingest holds the batch and retries) like any lost connection, and
the pool must not hand out that connection again.

The fault is injected at the socket edge: a proxy in front of the real server appends the
server's goodbye to the RowDescription that ends the next Describe, in the same segment, as a
loaded machine receives them.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from hub.errors import StorageUnavailable
from hub.sql import open_database
from hub.storage.postgres import PostgresStorage

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _error_response(severity: str, code: str, message: str) -> bytes:
    """A backend ErrorResponse (PostgreSQL protocol §55.7: 'E', int32 length, fields, NUL)."""
    fields = b"".join(
        kind + text.encode() + b"\0"
        for kind, text in ((b"S", severity), (b"V", severity), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


_ADMIN_SHUTDOWN = _error_response(
    "FATAL", "57P01", "terminating connection due to administrator command"
)


class _SessionEndingProxy:
    """Forwards to PostgreSQL; once armed, ends the next session that describes a statement."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.armed = False
        self.ended = 0
        self.port = 0

    async def __aenter__(self) -> _SessionEndingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        try:
            async with asyncio.TaskGroup() as tg:
                up = tg.create_task(_copy(client_r, server_w))
                await self._down(server_r, client_w)
                up.cancel()
        except* (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (server_w, client_w):
                w.close()

    async def _down(self, server: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        # sslmode=disable: every server message is framed (type byte, int32 length with itself).
        while True:
            head = await server.readexactly(5)
            msg = head + await server.readexactly(struct.unpack("!i", head[1:])[0] - 4)
            if self.armed and head[:1] == b"T":  # RowDescription: the Describe step is done
                self.armed = False
                self.ended += 1
                client.write(msg + _ADMIN_SHUTDOWN)
                await client.drain()
                return  # what PostgreSQL does next: close (seen when the client closes too)
            client.write(msg)
            await client.drain()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(65536):
        dst.write(data)
        await dst.drain()


@pytest.fixture
async def proxied(pg_dsn: str) -> AsyncIterator[tuple[_SessionEndingProxy, str]]:
    url = urlsplit(pg_dsn)
    assert url.hostname is not None
    assert url.port is not None
    async with _SessionEndingProxy(url.hostname, url.port) as proxy:
        netloc = f"{url.username}@127.0.0.1:{proxy.port}"
        yield proxy, url._replace(netloc=netloc, query="sslmode=disable").geturl()


async def test_a_session_ended_mid_statement_is_storage_unavailable(
    proxied: tuple[_SessionEndingProxy, str],
) -> None:
    proxy, dsn = proxied
    async with PostgresStorage(dsn) as storage:
        await storage.ping()  # a pooled connection, its statements already described
        proxy.armed = True
        # A statement this connection has not described yet: Parse/Describe, then the goodbye.
        with pytest.raises(StorageUnavailable):
            await storage.check_schema()
        assert proxy.ended == 1
        # The pool dropped that connection: the next call gets a fresh one and succeeds.
        await storage.ping()


async def test_the_api_database_maps_it_the_same(
    proxied: tuple[_SessionEndingProxy, str],
) -> None:
    proxy, dsn = proxied
    async with open_database(dsn) as db:
        await db.fetch("SELECT 1 AS one")
        proxy.armed = True
        with pytest.raises(StorageUnavailable):
            await db.fetch("SELECT 2 AS two")
        assert proxy.ended == 1
        assert await db.fetch("SELECT 3 AS three") == [{"three": 3}]
