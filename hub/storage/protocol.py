"""The one interface the ingest writes through; PostgreSQL and SQLite both implement it."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self

from hub.storage.model import (
    Resolution,
    RollupRow,
    SeriesKey,
    StoredReading,
    WriteBatch,
    WriteResult,
)

__all__ = ["Storage"]


class Storage(Protocol):
    """A system of record for readings, rollups, dead letters, status and tag metadata.

    `write` is one transaction: everything in the batch is committed, or nothing is and it raises
    `StorageUnavailable`. Writing a reading that is already stored is a no-op (identity
    `(site, line, machine, tag, ts)`), and rollups only count rows that were actually inserted.
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

    async def read_readings(
        self, key: SeriesKey, start_ms: int, end_ms: int
    ) -> list[StoredReading]:
        """Readings of one series with start_ms <= ts < end_ms, in ts order."""
        ...

    async def read_rollups(
        self, key: SeriesKey, resolution: Resolution, start_ms: int, end_ms: int
    ) -> list[RollupRow]:
        """Rollup buckets of one series with start_ms <= bucket < end_ms, in order."""
        ...

    async def read_produced(
        self, site: str, line: str, machine: str, start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """Readings agents reported producing per minute (start_ms <= minute < end_ms)."""
        ...

    async def read_tag_meta(
        self, site: str, line: str, machine: str
    ) -> dict[str, tuple[str | None, str | None]]:
        """Tag → (unit, description) from the machine's newest meta message."""
        ...

    async def read_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent dead letters first (payload truncated to the stored limit)."""
        ...

    async def read_status(self) -> dict[str, list[dict[str, Any]]]:
        """Current rows of `machines`, `agents` and `machine_agents` (which agent polls what)."""
        ...
