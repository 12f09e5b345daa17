"""Cursor paging on `/machines`, `/series`, `/agents` and `/dead-letters`, on PostgreSQL and
SQLite: walking every page returns every row exactly once in the unpaged order, rows inserted
between pages never cause a duplicate or a skip, bad cursors and limits are refused (422)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitest import Api, migrate, running_api

from hub.api.v1.paging import decode_cursor, encode_cursor
from hub.auth import Role
from hub.config import ApiConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")

T = 1_799_990_000_000
LISTS = ["/api/v1/machines", "/api/v1/series", "/api/v1/agents", "/api/v1/dead-letters"]


@pytest.fixture(params=["postgresql", "sqlite"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        found = request.getfixturevalue("pg_dsn")
    await migrate(found)
    return found


async def test_cursor_round_trip_and_refusals() -> None:
    key = ("plant-ä", "line 1", "press/01", "oil_temp")
    cursor = encode_cursor("series", key)
    assert cursor.isascii()
    assert "=" not in cursor  # no padding: nothing to escape in a URL
    assert httpx.QueryParams({"after": cursor})["after"] == cursor
    assert decode_cursor("series", cursor, (str, str, str, str)) == key
    forged = base64.urlsafe_b64encode(json.dumps(["agents", True]).encode()).decode()
    for bad, listing, shape in [
        ("not base64!", "series", (str,)),
        (cursor, "machines", (str, str, str)),  # another list's cursor
        (cursor, "series", (str, str, str)),  # wrong shape
        (encode_cursor("dead-letters", ("7",)), "dead-letters", (int,)),  # wrong type
        (forged, "agents", (int,)),  # a bool is not an id
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), "agents", (str,)),  # not UTF-8
        (base64.urlsafe_b64encode(b'{"a":1}').decode(), "agents", (str,)),  # not a list
    ]:
        with pytest.raises(Exception, match="bad cursor") as info:
            decode_cursor(listing, bad, shape)
        assert getattr(info.value, "status_code", None) == 422


async def walk(
    api: Api, path: str, limit: int, params: dict[str, Any] | None = None
) -> list[list[dict[str, Any]]]:
    """Every page of `path`, following X-Next-Cursor (and checking Link says the same)."""
    h = api.auth(Role.ADMIN)
    pages: list[list[dict[str, Any]]] = []
    query: dict[str, Any] = {**(params or {}), "limit": limit}
    while True:
        r = await api.client.get(path, params=query, headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page) <= limit
        pages.append(page)
        cursor = r.headers.get("x-next-cursor")
        if cursor is None:
            assert "link" not in r.headers
            return pages
        assert len(page) == limit  # a short page is the last one
        link = r.headers["link"]
        assert link.endswith('>; rel="next"'), link
        target = httpx.URL(link[1 : link.index(">")])
        assert target.path == path
        assert dict(target.params) == {k: str(v) for k, v in {**query, "after": cursor}.items()}
        query = {**query, "after": cursor}
        assert len(pages) < 1000


async def _seed_machines(api: Api, site: str, n: int, offset: int = 0) -> None:
    """`n` machines of `site` over 3 lines, each known from one or all of status, series and an
    agent's report (a machine is listed whichever table knows it)."""
    db = api.services.db
    for i in range(offset, offset + n):
        line, machine = f"line-{i % 3}", f"m-{i:03d}"
        sources = (
            ("status", "series", "agent")
            if i % 4 == 3
            else (("status", "series", "agent")[i % 4 % 3],)
        )
        if "status" in sources:
            await db.execute(
                "INSERT INTO machines (site, line, machine, state, status_ts, detail, payload,"
                " last_seen) VALUES ($1, $2, $3, 'online', $4, NULL, '{}', $4)",
                site,
                line,
                machine,
                T + i,
            )
        if "series" in sources:
            for tag in ("a", "b"):
                await db.execute(
                    "INSERT INTO series (site, line, machine, tag) VALUES ($1, $2, $3, $4)",
                    site,
                    line,
                    machine,
                    tag,
                )
        if "agent" in sources:
            await db.execute(
                "INSERT INTO machine_agents (site, line, machine, agent_id, updated_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                site,
                line,
                machine,
                f"pc-{site}-{i % 5}",
                T,
            )


async def _seed_agents(api: Api, names: list[str]) -> None:
    for name in names:
        await api.services.db.execute(
            "INSERT INTO agents (agent_id, state, status_ts, version, buffer_depth, drops,"
            " payload, last_seen) VALUES ($1, 'online', $2, '1.0', 0, 0, '{}', $2)",
            name,
            T,
        )


async def _seed_dead_letters(api: Api, n: int, tag: str) -> None:
    for i in range(n):
        await api.services.db.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason,"
            " message, src) VALUES ($1, $2, $3, 3, 'bad_json', 'not JSON', NULL)",
            T + i,
            f"ms/v1/{tag}/{i}",
            b"{x}",
        )


def _keys(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [tuple(r[f] for f in fields) for r in rows]


MACHINE = ("site", "line", "machine")


async def test_machines_pages_walk_every_machine_once_in_order(url: str) -> None:
    async with running_api(url) as api:
        await _seed_machines(api, "s1", 40)
        await _seed_machines(api, "s0", 7)
        h = api.auth(Role.VIEWER)
        whole = (await api.client.get("/api/v1/machines", headers=h)).json()
        assert len(whole) == 47
        assert _keys(whole, MACHINE) == sorted(_keys(whole, MACHINE))
        for limit in (1, 3, 10, 46, 47, 1000):
            pages = await walk(api, "/api/v1/machines", limit)
            assert [m for p in pages for m in p] == whole, limit
        assert len(await walk(api, "/api/v1/machines", 47)) == 1  # exactly full: no next page


async def test_machines_inserted_between_pages_are_neither_repeated_nor_skipped(
    url: str,
) -> None:
    async with running_api(url) as api:
        await _seed_machines(api, "s5", 30)
        h = api.auth(Role.VIEWER)
        r = await api.client.get("/api/v1/machines", params={"limit": 10}, headers=h)
        first = r.json()
        cursor = r.headers["x-next-cursor"]
        # Before the cursor (an earlier site, and a name inside the first page's range), and
        # after it: only the latter may show up, once, in its place.
        await _seed_machines(api, "s4", 3)
        await api.services.db.execute(
            "INSERT INTO machines (site, line, machine, state, status_ts, detail, payload,"
            " last_seen) VALUES ('s5', 'line-0', 'm-000a', 'online', NULL, NULL, '{}', $1)",
            T,
        )
        await _seed_machines(api, "s6", 4)
        rest = await walk(api, "/api/v1/machines", 7, {"after": cursor})
        seen = _keys(first, MACHINE) + _keys([m for p in rest for m in p], MACHINE)
        assert len(seen) == len(set(seen)) == 34
        assert seen == sorted(seen)
        assert ("s5", "line-0", "m-000a") not in seen
        assert not any(k[0] == "s4" for k in seen)
        assert sum(k[0] == "s6" for k in seen) == 4


async def test_series_pages_keep_the_filters_and_the_order(url: str) -> None:
    async with running_api(url) as api:
        await _seed_machines(api, "s1", 24)
        await _seed_machines(api, "s2", 6)
        h = api.auth(Role.VIEWER)
        whole = (await api.client.get("/api/v1/series", headers=h)).json()
        assert len(whole) == 2 * (12 + 3)
        for limit in (1, 4, 29, 30):
            assert [s for p in await walk(api, "/api/v1/series", limit) for s in p] == whole
        only = (await api.client.get("/api/v1/series", params={"site": "s1"}, headers=h)).json()
        assert [s for p in await walk(api, "/api/v1/series", 5, {"site": "s1"}) for s in p] == only
        one = {"site": "s1", "machine": "m-003"}
        assert [s["tag"] for p in await walk(api, "/api/v1/series", 1, one) for s in p] == [
            "a",
            "b",
        ]
        # A series added between pages, before the cursor: not repeated, nothing skipped.
        r = await api.client.get("/api/v1/series", params={"limit": 10}, headers=h)
        await api.services.db.execute(
            "INSERT INTO series (site, line, machine, tag) VALUES ('s1', 'line-0', 'm-000', '0')"
        )
        rest = await walk(api, "/api/v1/series", 10, {"after": r.headers["x-next-cursor"]})
        ids = [s["id"] for s in r.json()] + [s["id"] for p in rest for s in p]
        assert ids == [s["id"] for s in whole]


async def test_agents_pages(url: str) -> None:
    async with running_api(url) as api:
        names = [f"pc-{i:02d}" for i in range(0, 40, 2)]
        await _seed_agents(api, names)
        h = api.auth(Role.VIEWER)
        whole = (await api.client.get("/api/v1/agents", headers=h)).json()
        assert [a["agent_id"] for a in whole] == names
        for limit in (1, 6, 20):
            assert [a for p in await walk(api, "/api/v1/agents", limit) for a in p] == whole
        r = await api.client.get("/api/v1/agents", params={"limit": 5}, headers=h)
        await _seed_agents(api, ["pc-01", "pc-99"])  # one before the cursor, one after
        rest = await walk(api, "/api/v1/agents", 5, {"after": r.headers["x-next-cursor"]})
        seen = [a["agent_id"] for a in r.json()] + [a["agent_id"] for p in rest for a in p]
        assert seen == [*names, "pc-99"]


async def test_dead_letters_pages_newest_first(url: str) -> None:
    async with running_api(url) as api:
        await _seed_dead_letters(api, 25, "old")
        h = api.auth(Role.ADMIN)
        default = (await api.client.get("/api/v1/dead-letters", headers=h)).json()
        assert len(default) == 25  # the default limit (100) as before
        ids = [d["id"] for d in default]
        assert ids == sorted(ids, reverse=True)
        for limit in (1, 7, 25):
            assert [d for p in await walk(api, "/api/v1/dead-letters", limit) for d in p] == default
        # Newer letters arriving while an admin pages back never show up again further down.
        r = await api.client.get("/api/v1/dead-letters", params={"limit": 10}, headers=h)
        await _seed_dead_letters(api, 5, "new")
        rest = await walk(api, "/api/v1/dead-letters", 10, {"after": r.headers["x-next-cursor"]})
        assert [d["id"] for d in r.json()] + [d["id"] for p in rest for d in p] == ids
        # before_id keeps working, alone.
        old = await api.client.get("/api/v1/dead-letters", params={"before_id": ids[9]}, headers=h)
        assert [d["id"] for d in old.json()] == ids[10:]
        both = await api.client.get(
            "/api/v1/dead-letters",
            params={"before_id": ids[9], "after": r.headers["x-next-cursor"]},
            headers=h,
        )
        assert both.status_code == 422
        assert "not both" in both.text


async def test_bad_cursors_and_limits_are_refused(url: str) -> None:
    async with running_api(url) as api:
        h = api.auth(Role.ADMIN)
        other = encode_cursor("agents", ("pc-1",))
        for path in LISTS:
            for bad in ("nonsense", "", other if path != "/api/v1/agents" else "W10", "a" * 2049):
                r = await api.client.get(path, params={"after": bad, "limit": 5}, headers=h)
                assert r.status_code == 422, (path, bad, r.text)
                if len(bad) <= 2048:
                    assert "bad cursor" in r.json()["detail"], (path, r.text)
            for limit, status in ((0, 422), (-1, 422), (1001, 422), (1000, 200), (1, 200)):
                r = await api.client.get(path, params={"limit": limit}, headers=h)
                assert r.status_code == status, (path, limit, r.text)


async def test_unpaged_answers_are_unchanged(url: str) -> None:
    """A client that never pages gets the whole list and no paging headers."""
    async with running_api(url) as api:
        await _seed_machines(api, "s1", 1200)
        await _seed_agents(api, [f"pc-{i:04d}" for i in range(1100)])
        h = api.auth(Role.VIEWER)
        for path, n in (("/api/v1/machines", 1200), ("/api/v1/agents", 1100)):
            r = await api.client.get(path, headers=h)
            assert len(r.json()) == n
            assert "x-next-cursor" not in r.headers
            assert "link" not in r.headers
        paged = await walk(api, "/api/v1/machines", 1000)
        assert [len(p) for p in paged] == [1000, 200]


async def test_a_cross_origin_client_may_read_the_paging_headers(url: str) -> None:
    origin = "http://mes.plant.test"
    async with running_api(url, api=ApiConfig(cors_origins=[origin])) as api:
        await _seed_agents(api, ["pc-1", "pc-2"])
        headers = {**api.auth(Role.VIEWER), "Origin": origin}
        r = await api.client.get("/api/v1/agents", params={"limit": 1}, headers=headers)
        exposed = r.headers["access-control-expose-headers"].lower()
        assert "x-next-cursor" in exposed
        assert "link" in exposed
        assert r.headers["x-next-cursor"]
