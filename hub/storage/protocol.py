"""The one interface the ingest writes through; PostgreSQL and SQLite both implement it."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from hub.storage.model import (
    WriteBatch,
    WriteResult,
)

__all__ = ["Storage"]


class Storage(Protocol):
    """A system of record for readings, rollups, dead letters, status and tag metadata.

    `write` is one transaction: everything in the batch is committed, or nothing is and it raises
    `StorageUnavailable`. Writing a reading that is already stored is a no-op (identity
    `(site, line, machine, tag, ts)`), and rollups only count rows that were actually inserted.
    Storage only writes: the hub reads through `hub.query.ReadQueries`, on either backend.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations; return the names applied."""
        ...

    async def check_schema(self) -> None:
        """Raise `SchemaError` unless every known migration is applied (and no unknown one)."""
        ...

    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless the backend answers a trivial query."""
        ...

    async def write(self, batch: WriteBatch) -> WriteResult:
        """Commit telemetry, dead letters and status updates in one transaction."""
        ...

    async def maintain(self, now_ms: int) -> None:
        """Create partitions ahead; apply retention to readings, production and dead letters."""
        ...
