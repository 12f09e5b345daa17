"""`GET /api/v1/events`: machine events newest first, filtered by machine, severity and time,
on PostgreSQL and SQLite (the demo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apitest import migrate, running_api, unique

from hub.auth import Role
from hub.storage import EventBatch, EventRow, WriteBatch, open_storage

pytestmark = pytest.mark.asyncio(loop_scope="session")

T = 1_790_000_000_000


@pytest.fixture(params=["postgresql", "sqlite"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        found = request.getfixturevalue("pg_dsn")
    await migrate(found)
    return found


async def test_events_newest_first_by_machine_severity_and_time(url: str) -> None:
    site = unique("ev")

    def row(event_id: str, ts: int, severity: int, state: str | None) -> EventRow:
        return EventRow(event_id, ts, "guard_door", "alarm", severity, "Guard", state, '{"d":1}')

    async with open_storage(url) as storage:
        await storage.write(
            WriteBatch(
                events=[
                    EventBatch(site, "l1", "press-01", "gw", 1,
                               [row("a", T, 700, "active"), row("a", T + 10, 700, "cleared")],
                               received_at=T + 20),
                    EventBatch(site, "l1", "oven-01", "gw", 2, [row("b", T + 5, 100, None)],
                               received_at=T + 20),
                ]
            )
        )  # fmt: skip
    async with running_api(url) as api:
        viewer = api.auth(Role.VIEWER)

        async def ids(**params: object) -> list[tuple[str, str, int]]:
            r = await api.client.get("/api/v1/events", params={"site": site, **params},
                                     headers=viewer)  # fmt: skip
            assert r.status_code == 200, r.text
            return [(e["machine"], e["id"], e["ts"]) for e in r.json()]

        assert await ids() == [
            ("press-01", "a", T + 10), ("oven-01", "b", T + 5), ("press-01", "a", T),
        ]  # fmt: skip
        assert await ids(machine="oven-01") == [("oven-01", "b", T + 5)]
        assert await ids(min_severity=500) == [("press-01", "a", T + 10), ("press-01", "a", T)]
        assert await ids(since_ms=T + 1, until_ms=T + 10) == [("oven-01", "b", T + 5)]
        assert await ids(limit=1) == [("press-01", "a", T + 10)]
        one = (await api.client.get("/api/v1/events", params={"site": site, "limit": 1},
                                    headers=viewer)).json()[0]  # fmt: skip
        assert one["state"] == "cleared"
        assert one["fields"] == {"d": 1}
        assert one["src"] == "gw"
        bad = await api.client.get("/api/v1/events", params={"machine": "a b"}, headers=viewer)
        assert bad.status_code == 422
