"""What a hub database holds, read back with plain SQL on either backend: for tests only (the hub
reads through `hub.query.ReadQueries`; storage backends only write)."""

from __future__ import annotations

from typing import Any, Literal

from hub.sql import open_database
from hub.storage import SeriesKey
from hub.storage.model import RollupRow, StoredReading

_SERIES = "s.site = $1 AND s.line = $2 AND s.machine = $3 AND s.tag = $4"


class Stored:
    """Read-back helpers over the database at `url` (`postgresql://…` or `sqlite:///…`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with open_database(self.url) as db:
            return await db.fetch(sql, *args)

    async def read_readings(
        self, key: SeriesKey, start_ms: int, end_ms: int
    ) -> list[StoredReading]:
        """Readings of one series with start_ms <= ts < end_ms, in ts order."""
        rows = await self._fetch(
            "SELECT r.ts, r.value, r.value_text, r.quality FROM readings r"
            f" JOIN series s ON s.id = r.series_id WHERE {_SERIES}"
            " AND r.ts >= $5 AND r.ts < $6 ORDER BY r.ts",
            *key,
            start_ms,
            end_ms,
        )
        return [StoredReading(r["ts"], r["value"], r["value_text"], r["quality"]) for r in rows]

    async def read_rollups(
        self, key: SeriesKey, resolution: Literal["minute", "hour"], start_ms: int, end_ms: int
    ) -> list[RollupRow]:
        """Rollup buckets of one series with start_ms <= bucket < end_ms, in order."""
        rows = await self._fetch(
            "SELECT b.bucket, b.min, b.max, b.sum, b.count, b.last_ts, b.last_value"
            f" FROM rollup_{resolution} b JOIN series s ON s.id = b.series_id WHERE {_SERIES}"
            " AND b.bucket >= $5 AND b.bucket < $6 ORDER BY b.bucket",
            *key,
            start_ms,
            end_ms,
        )
        return [RollupRow(**r) for r in rows]

    async def read_produced(
        self, site: str, line: str, machine: str, start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """Readings agents reported producing per minute (start_ms <= minute < end_ms)."""
        rows = await self._fetch(
            "SELECT minute, produced FROM produced_minutes WHERE site = $1 AND line = $2"
            " AND machine = $3 AND minute >= $4 AND minute < $5",
            site,
            line,
            machine,
            start_ms,
            end_ms,
        )
        return {int(r["minute"]): int(r["produced"]) for r in rows}

    async def read_tag_meta(
        self, site: str, line: str, machine: str
    ) -> dict[str, tuple[str | None, str | None]]:
        """Tag → (unit, description) from the machine's newest meta message."""
        rows = await self._fetch(
            "SELECT tag, unit, description FROM tag_meta"
            " WHERE site = $1 AND line = $2 AND machine = $3",
            site,
            line,
            machine,
        )
        return {r["tag"]: (r["unit"], r["description"]) for r in rows}

    async def read_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent dead letters first."""
        return await self._fetch(
            "SELECT id, received_at, topic, payload, payload_size, reason, message, src"
            " FROM dead_letters ORDER BY id DESC LIMIT $1",
            limit,
        )

    async def read_status(self) -> dict[str, list[dict[str, Any]]]:
        """Current rows of `machines`, `agents` and `machine_agents`."""
        return {
            "machines": await self._fetch("SELECT * FROM machines ORDER BY site, line, machine"),
            "agents": await self._fetch("SELECT * FROM agents ORDER BY agent_id"),
            "machine_agents": await self._fetch(
                "SELECT * FROM machine_agents ORDER BY site, line, machine"
            ),
        }
