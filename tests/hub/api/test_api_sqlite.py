"""The API on the embedded demo's SQLite storage: login, machines, latest, history."""

from __future__ import annotations

from pathlib import Path

import pytest
from apitest import migrate, running_api, store_readings

from hub.auth import Role

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_799_990_000_000


async def test_reads_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await migrate(url)
    await store_readings(url, "s", "m1", "temp", [(T0 + i * 1000, float(i)) for i in range(3000)])
    async with running_api(url) as api:
        h = api.auth(Role.VIEWER)
        [machine] = (await api.client.get("/api/v1/machines", headers=h)).json()
        assert machine["last_seen_ms"] == T0 + 2999 * 1000
        [latest] = (await api.client.get("/api/v1/machines/s/l1/m1/latest", headers=h)).json()
        assert latest["v"] == 2999.0
        [series] = (await api.client.get("/api/v1/series", headers=h)).json()
        r = await api.client.get(
            f"/api/v1/series/{series['id']}/readings",
            params={"from": T0, "to": T0 + 3000 * 1000, "max_points": 100},
            headers=h,
        )
        body = r.json()
        assert body["resolution"] == "minute"
        assert len(body["buckets"]) <= 100
        assert sum(b["count"] for b in body["buckets"]) == 3000
        assert (await api.client.get("/api/v1/dead-letters", headers=h)).status_code == 403
