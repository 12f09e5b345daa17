"""The storage suite: both backends must pass it unchanged (real PostgreSQL, real SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import SchemaError
from hub.query import Outage
from hub.query.reads import ReadQueries
from hub.sql import open_database
from hub.storage import (
    AgentStatusUpdate,
    DeadLetter,
    MachineMetaUpdate,
    MachineStatusUpdate,
    SeriesKey,
    Storage,
    TelemetryBatch,
    WriteBatch,
    open_storage,
)
from hub.storage.model import DEAD_LETTER_PAYLOAD_LIMIT
from hub.storage.rollup import BUCKET_MS, aggregate
from tests.harness.stored import Stored

# Async fixtures live on the session loop (pyproject); run the tests there too.
pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = 1_763_900_000_000  # fixed clock: storage never reads the time itself
DAY = 86_400_000


@dataclass(frozen=True)
class R:
    """A reading as the ingest hands it over (same attributes as wire.Reading)."""

    tag: str
    ts: int
    v: float | int | bool | str
    q: str = "good"


def tb(readings: list[R], seq: int = 1, machine: str = "m1") -> TelemetryBatch:
    return TelemetryBatch("s1", "l1", machine, "src1", seq, readings)


def backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of the given backend for this test."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, request, tmp_path)


@pytest.fixture
def stored(storage_url: str) -> Stored:
    return Stored(storage_url)


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    async with open_storage(storage_url, retention_days=7, dead_letter_retention_days=3) as st_:
        await st_.migrate()
        yield st_


async def test_schema_check_and_idempotent_migrate(storage: Storage) -> None:
    await storage.check_schema()
    assert await storage.migrate() == []
    await storage.ping()


async def test_schema_check_fails_before_migrate(storage_url: str) -> None:
    async with open_storage(storage_url) as st_:
        with pytest.raises(SchemaError, match="millstream-hub migrate"):
            await st_.check_schema()


async def test_same_batch_three_times_stored_once(stored: Stored, storage: Storage) -> None:
    batch = tb([R("temp", NOW + i, 20.0 + i) for i in range(100)])
    results = [await storage.write(WriteBatch(telemetry=[batch])) for _ in range(3)]
    assert [(r.inserted, r.duplicates) for r in results] == [(100, 0), (0, 100), (0, 100)]
    rows = await stored.read_readings(SeriesKey("s1", "l1", "m1", "temp"), 0, 2**62)
    assert [r.ts for r in rows] == [NOW + i for i in range(100)]
    (bucket,) = await stored.read_rollups(SeriesKey("s1", "l1", "m1", "temp"), "hour", 0, 2**62)
    assert bucket.count == 100


async def test_duplicates_inside_one_transaction_and_overlap(
    stored: Stored, storage: Storage
) -> None:
    a = tb([R("t", NOW + i, float(i)) for i in range(60)], seq=1)
    b = tb([R("t", NOW + i, float(i)) for i in range(40, 100)], seq=2)
    first = await storage.write(WriteBatch(telemetry=[a, a, b]))
    assert (first.inserted, first.duplicates) == (100, 80)
    again = await storage.write(WriteBatch(telemetry=[b]))
    assert again.inserted == 0
    rows = await stored.read_readings(SeriesKey("s1", "l1", "m1", "t"), 0, 2**62)
    assert len(rows) == 100


async def test_value_kinds_and_quality(stored: Stored, storage: Storage) -> None:
    readings = [
        R("n", NOW, 1.5),
        R("i", NOW, 7, "uncertain"),
        R("b", NOW, True),
        R("b", NOW + 1, False, "bad"),
        R("s", NOW, "RUNNING"),
    ]
    await storage.write(WriteBatch(telemetry=[tb(readings)]))

    async def read(tag: str) -> list[tuple[object, ...]]:
        rows = await stored.read_readings(SeriesKey("s1", "l1", "m1", tag), 0, 2**62)
        return [tuple(r) for r in rows]

    assert await read("n") == [(NOW, 1.5, None, 0)]
    assert await read("i") == [(NOW, 7.0, None, 1)]
    assert await read("b") == [(NOW, 1.0, "true", 0), (NOW + 1, 0.0, "false", 2)]
    assert await read("s") == [(NOW, None, "RUNNING", 0)]
    # Text has no numeric rollup; bools roll up as 0/1 (avg = share of time true).
    assert await stored.read_rollups(SeriesKey("s1", "l1", "m1", "s"), "minute", 0, 2**62) == []
    (b,) = await stored.read_rollups(SeriesKey("s1", "l1", "m1", "b"), "minute", 0, 2**62)
    assert (b.min, b.max, b.count, b.last_value) == (0.0, 1.0, 2, 0.0)


async def test_readings_across_days(stored: Stored, storage: Storage) -> None:
    readings = [R("t", NOW - d * DAY, float(d)) for d in range(5)]
    assert (await storage.write(WriteBatch(telemetry=[tb(readings)]))).inserted == 5
    rows = await stored.read_readings(SeriesKey("s1", "l1", "m1", "t"), 0, 2**62)
    assert len(rows) == 5


async def test_dead_letters_and_status(stored: Stored, storage: Storage) -> None:
    big = b"x" * (DEAD_LETTER_PAYLOAD_LIMIT + 10)
    await storage.write(
        WriteBatch(
            dead_letters=[
                DeadLetter("ms/v1/a/b/c/telemetry", b"{", "bad_json", "truncated", NOW, "src9"),
                DeadLetter("ms/v1/a/b/c/telemetry", big, "too_large", "2 MiB", NOW + 1),
            ],
            machines=[
                MachineStatusUpdate("s1", "l1", "m1", "online", NOW, None, "{}", NOW),
            ],
            agents=[AgentStatusUpdate("ag1", "online", NOW, "0.1.0", 5, 0, "{}", NOW)],
        )
    )
    # A status received before the stored one (its commit landed later) must not overwrite it.
    await storage.write(
        WriteBatch(
            machines=[
                MachineStatusUpdate("s1", "l1", "m1", "offline", NOW + 5, None, "{}", NOW - 2),
                MachineStatusUpdate("s1", "l1", "m2", "faulted", NOW, "E42", "{}", NOW + 2),
            ],
            # A last will: its ts is when the connection began, older than the status it ends.
            agents=[AgentStatusUpdate("ag1", "offline", NOW - 60_000, None, None, None, "{}", NOW)],
        )
    )
    dls = await stored.read_dead_letters()
    assert [d["reason"] for d in dls] == ["too_large", "bad_json"]
    assert dls[0]["payload_size"] == len(big)
    assert len(dls[0]["payload"]) == DEAD_LETTER_PAYLOAD_LIMIT
    assert bytes(dls[1]["payload"]) == b"{"
    assert dls[1]["src"] == "src9"
    status = await stored.read_status()
    assert [(m["machine"], m["state"]) for m in status["machines"]] == [
        ("m1", "online"),
        ("m2", "faulted"),
    ]
    assert [(a["agent_id"], a["state"]) for a in status["agents"]] == [("ag1", "offline")]


async def test_retention(stored: Stored, storage: Storage) -> None:
    old, fresh = R("t", NOW - 10 * DAY, 1.0), R("t", NOW, 2.0)
    await storage.write(
        WriteBatch(
            telemetry=[tb([old, fresh])],
            dead_letters=[
                DeadLetter("t", b"", "bad_json", "", NOW - 5 * DAY),
                DeadLetter("t", b"", "bad_json", "", NOW),
            ],
        )
    )
    key = SeriesKey("s1", "l1", "m1", "t")
    assert len(await stored.read_rollups(key, "minute", 0, 2**62)) == 2
    await storage.maintain(NOW)
    rows = await stored.read_readings(key, 0, 2**62)
    assert [r.ts for r in rows] == [NOW]
    # Rollups of dropped readings go with them; the fresh minute and hour stay.
    for resolution in ("minute", "hour"):
        buckets = await stored.read_rollups(key, resolution, 0, 2**62)
        assert [(b.count, b.last_ts) for b in buckets] == [(1, NOW)], resolution
    assert [d["received_at"] for d in await stored.read_dead_letters()] == [NOW]
    await storage.maintain(NOW)  # idempotent
    # Writing after maintenance still works (partitions ahead exist / are created on demand).
    assert (await storage.write(WriteBatch(telemetry=[tb([R("t", NOW + DAY, 3.0)])]))).inserted


async def test_cleared_alerts_go_with_retention_and_their_transitions_too(
    storage_url: str, storage: Storage
) -> None:
    old, kept = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    async with open_database(storage_url) as db:
        for alert, cleared in ((old, NOW - 10 * DAY), (kept, NOW)):
            await db.execute(
                "INSERT INTO alerts (id, rule, kind, severity, site, line, machine, tag, state,"
                " active_ms, cleared_ms, recorded_ms) VALUES ($1, 'r', 'threshold', 'warning',"
                " 's1', 'l1', 'm1', 't', 'cleared', $2, $2, $2)",
                alert,
                cleared,
            )
            for state in ("active", "cleared"):
                await db.execute(
                    "INSERT INTO alert_transitions (alert_id, state, ts, by_whom, recorded_ms)"
                    " VALUES ($1, $2, $3, 'millstream', $3)",
                    alert,
                    state,
                    cleared,
                )
        await storage.maintain(NOW)
        left = await db.fetch("SELECT alert_id FROM alert_transitions")
        assert [str(r["alert_id"]) for r in left] == [kept, kept]
        assert [str(r["id"]) for r in await db.fetch("SELECT id FROM alerts")] == [kept]


def agent(
    ts: int, produced: list[tuple[str, int, int]], site: str | None = "s1", line: str | None = "l1"
) -> AgentStatusUpdate:
    return AgentStatusUpdate(
        "ag1", "online", ts, "1.0", 0, 0, "{}", ts, site=site, line=line, produced=produced
    )


async def test_reported_production_keeps_the_greatest_count(
    stored: Stored, storage: Storage
) -> None:
    m0, m1 = NOW - NOW % 60_000, NOW - NOW % 60_000 + 60_000
    # Every status repeats the newest minutes with growing counts; one arrives late (lower).
    for i, (c0, c1) in enumerate([(20, 0), (40, 5), (60, 15), (55, 10)]):
        await storage.write(
            WriteBatch(agents=[agent(NOW + i * 10_000, [("m1", m0, c0), ("m1", m1, c1)])])
        )
    assert await stored.read_produced("s1", "l1", "m1", 0, 2**62) == {m0: 60, m1: 15}
    # Same minute twice in one batch (two statuses): still the greatest.
    await storage.write(
        WriteBatch(agents=[agent(NOW, [("m2", m0, 7)]), agent(NOW + 1, [("m2", m0, 9)])])
    )
    assert await stored.read_produced("s1", "l1", "m2", 0, 2**62) == {m0: 9}
    assert await stored.read_produced("s1", "l1", "m1", m1, 2**62) == {m1: 15}
    # An older agent names no site/line: its status is stored, its production is not.
    await storage.write(WriteBatch(agents=[agent(NOW + 60_000, [("m3", m0, 5)], None, None)]))
    assert await stored.read_produced("s1", "l1", "m3", 0, 2**62) == {}
    assert [a["status_ts"] for a in (await stored.read_status())["agents"]] == [NOW + 60_000]


async def test_reported_production_retention(stored: Stored, storage: Storage) -> None:
    old, fresh = NOW - 10 * DAY, NOW - NOW % 60_000
    old -= old % 60_000
    await storage.write(WriteBatch(agents=[agent(NOW, [("m1", old, 3), ("m1", fresh, 4)])]))
    await storage.maintain(NOW)
    assert await stored.read_produced("s1", "l1", "m1", 0, 2**62) == {fresh: 4}


def meta(
    ts: int, tags: list[tuple[str, str | None, str | None]], machine: str = "m1"
) -> MachineMetaUpdate:
    return MachineMetaUpdate("s1", "l1", machine, ts, tags, "{}", NOW)


async def test_meta_replaces_the_tag_list_unless_older(stored: Stored, storage: Storage) -> None:
    await storage.write(
        WriteBatch(metas=[meta(NOW, [("temp", "°C", "Oil temperature"), ("rpm", "rpm", None)])])
    )
    assert await stored.read_tag_meta("s1", "l1", "m1") == {
        "temp": ("°C", "Oil temperature"),
        "rpm": ("rpm", None),
    }
    # A newer message replaces the whole list: a tag it leaves out loses its unit.
    await storage.write(WriteBatch(metas=[meta(NOW + 1, [("temp", "K", None)])]))
    assert await stored.read_tag_meta("s1", "l1", "m1") == {"temp": ("K", None)}
    # A late, older message (a replayed retained one) changes nothing.
    await storage.write(WriteBatch(metas=[meta(NOW - 5, [("temp", "°F", None)])]))
    assert await stored.read_tag_meta("s1", "l1", "m1") == {"temp": ("K", None)}
    # Two in one batch: the newest wins, whatever the order; other machines are untouched.
    await storage.write(
        WriteBatch(
            metas=[
                meta(NOW + 9, [("p", "bar", None)], "m2"),
                meta(NOW + 3, [("p", "psi", None)], "m2"),
                meta(NOW + 2, []),
            ]
        )
    )
    assert await stored.read_tag_meta("s1", "l1", "m2") == {"p": ("bar", None)}
    assert await stored.read_tag_meta("s1", "l1", "m1") == {}


batches_strategy = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 3 * 3_600_000),  # three hours: several minute and hour buckets
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=batches_strategy)
async def test_rollups_equal_aggregates_of_raw_rows(
    stored: Stored, storage: Storage, batches
) -> None:
    # Each example writes to its own machine, so examples sharing the database don't interact.
    machine = f"m{abs(hash(str(batches))) % 10**12}"
    for i, batch in enumerate(batches):
        # Late, out-of-order and replayed readings: write each batch, then replay the first one.
        readings = [R(tag, NOW + ts, v) for tag, ts, v in batch]
        await storage.write(WriteBatch(telemetry=[tb(readings, seq=i, machine=machine)]))
        await storage.write(WriteBatch(telemetry=[tb(readings[:1], seq=i, machine=machine)]))
    for tag in ("a", "b"):
        key = SeriesKey("s1", "l1", machine, tag)
        raw = await stored.read_readings(key, 0, 2**62)
        for resolution, width in BUCKET_MS.items():
            expected = aggregate([(0, r.ts, r.value) for r in raw], width)
            got = await stored.read_rollups(key, resolution, 0, 2**62)
            assert [(g.bucket, g.min, g.max, g.count, g.last_ts, g.last_value) for g in got] == [
                (e[1], e[2], e[3], e[5], e[6], e[7]) for e in expected
            ]
            for g, e in zip(got, expected, strict=True):
                assert g.sum == pytest.approx(e[4], rel=1e-9, abs=1e-6)


async def test_postgresql_day_partitions_ahead_and_retention(pg_dsn: str) -> None:
    import asyncpg  # noqa: PLC0415

    async with open_storage(pg_dsn, retention_days=7) as st_:
        await st_.migrate()
        await st_.write(WriteBatch(telemetry=[tb([R("t", NOW - 9 * DAY, 1.0), R("t", NOW, 2.0)])]))
        await st_.maintain(NOW)
    conn = await asyncpg.connect(pg_dsn)
    try:
        names = {
            r[0]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'readings'::regclass"
            )
        }
    finally:
        await conn.close()
    # NOW is 2025-11-23 (UTC): today and two days ahead exist, the 9-day-old day is dropped.
    assert {"readings_20251123", "readings_20251124", "readings_20251125"} <= names
    assert "readings_20251114" not in names


async def test_outages_open_and_close_with_statuses_on_both_backends(
    storage: Storage, storage_url: str
) -> None:
    # The agent names its machines (site/line), then says m1's device is down and back; later the
    # agent itself goes (its will names no machines: the hub's pairing says whose they are).
    named = AgentStatusUpdate(
        "ag1", "online", NOW, "1.0", 0, 0, "{}", NOW, site="s1", line="l1", devices=("m1", "m2")
    )
    down = MachineStatusUpdate("s1", "l1", "m1", "offline", NOW, "no answer from x", "{}", NOW + 1)
    again = MachineStatusUpdate("s1", "l1", "m1", "offline", NOW, "still", "{}", NOW + 2)
    back = MachineStatusUpdate("s1", "l1", "m1", "online", NOW, None, "{}", NOW + 5)
    await storage.write(WriteBatch(agents=[named], machines=[down, again]))
    await storage.write(WriteBatch(machines=[back]))
    will = AgentStatusUpdate("ag1", "offline", 1, None, None, None, "{}", NOW + 9)
    await storage.write(WriteBatch(agents=[will]))
    async with open_database(storage_url) as db:
        queries = ReadQueries(db)
        m1 = await queries.outages("s1", "l1", "m1", 0, 2**62)
        m2 = await queries.outages("s1", "l1", "m2", 0, 2**62)
        assert await queries.outages("s1", "l1", "m1", NOW + 6, NOW + 8) == []
    assert m1 == [
        Outage("device", "no answer from x", NOW + 1, NOW + 5),  # one outage, not two
        Outage("agent", "agent ag1 offline", NOW + 9, None),
    ]
    assert m2 == [Outage("agent", "agent ag1 offline", NOW + 9, None)]
    # The agent is back: its machines' outage ends.
    await storage.write(
        WriteBatch(agents=[AgentStatusUpdate("ag1", "online", NOW, "1.0", 0, 0, "{}", NOW + 20)])
    )
    async with open_database(storage_url) as db:
        [ended] = await ReadQueries(db).outages("s1", "l1", "m2", 0, 2**62)
    assert ended.end_ms == NOW + 20
    # Drop spans, repeated (and growing) in every status: one outage each, kind `drop`.
    for last, n in ((5_000, 40), (9_000, 90)):
        await storage.write(
            WriteBatch(
                agents=[
                    AgentStatusUpdate(
                        "ag1", "online", NOW, "1.0", 0, 0, "{}", NOW + 30,
                        site="s1", line="l1", drop_spans=(("m2", 1_000, last, n),),
                    )
                ]
            )
        )  # fmt: skip
    async with open_database(storage_url) as db:
        drops = [
            o for o in await ReadQueries(db).outages("s1", "l1", "m2", 0, 2**62) if o.kind == "drop"
        ]
    assert drops == [
        Outage(
            "drop",
            "dropped at the edge (agent ag1's buffer full or past max_age): 90 readings",
            1_000,
            9_000,
        )
    ]
