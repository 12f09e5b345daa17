"""Readings stored per minute, as completeness counts them, on both backends: every kind of value
(numbers, bools and text) counts, and retention prunes the counts with the readings."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from hub.query import ReadQueries, completeness
from hub.sql import open_database
from hub.storage import TelemetryBatch, WriteBatch, open_storage

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = 1_800_000_000_000
M0 = NOW - NOW % 60_000
DAY = 86_400_000


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'hub.db'}"


def batch(seq: int, readings: list[wire.Reading]) -> WriteBatch:
    return WriteBatch(telemetry=[TelemetryBatch("s", "l", "oven", "src", seq, readings)])


async def test_text_readings_count_as_stored(url: str) -> None:
    # Per minute: 6 temperatures, 6 door states (bool), 6 recipe names (text) = 18 readings.
    readings = [
        wire.Reading(tag=tag, ts=minute + i * 10_000, v=v)
        for minute in (M0, M0 + 60_000)
        for i in range(6)
        for tag, v in (("temp", 180.0 + i), ("door", i % 2 == 0), ("recipe", f"bread-{i}"))
    ]
    old = [wire.Reading(tag="recipe", ts=M0 - 10 * DAY, v="rye")]
    async with open_storage(url, retention_days=7) as storage:
        await storage.migrate()
        await storage.write(batch(1, readings + old))
        await storage.write(batch(2, readings[:9]))  # a replay: nothing new is counted
    async with open_database(url) as db:
        queries = ReadQueries(db)
        counts = await queries.minute_counts("s", "l", "oven", M0, M0 + 120_000)
        assert counts == {M0: 18, M0 + 60_000: 18}
        # The agent produced 18 a minute: no gap, although a third of the readings are text.
        minutes = completeness(counts, M0, M0 + 120_000, {M0: 18, M0 + 60_000: 18})
        assert [m.ratio for m in minutes] == [1.0, 1.0]
        assert await queries.minute_counts("s", "l", "oven", M0 - 11 * DAY, M0 - 9 * DAY) == {
            M0 - 10 * DAY - (M0 - 10 * DAY) % 60_000: 1
        }
    async with open_storage(url, retention_days=7) as storage:
        await storage.maintain(NOW)
    async with open_database(url) as db:
        queries = ReadQueries(db)
        assert await queries.minute_counts("s", "l", "oven", 0, M0) == {}
        assert await queries.minute_counts("s", "l", "oven", M0, M0 + 120_000) == {
            M0: 18,
            M0 + 60_000: 18,
        }
