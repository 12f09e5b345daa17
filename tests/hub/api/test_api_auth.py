"""Auth against real PostgreSQL over the real app: 401/403, expiry, forgery, refresh rotation,
API keys, rate limits, disabled users, CORS closed; every WebSocket under /api/v1 likewise."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx
import jwt
import pytest
import uvicorn
from apitest import PASSWORD, SECRET, free_port, migrate, running_api
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.auth import Role
from hub.auth.service import USER_CHECK_S
from hub.config import ApiConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Every endpoint and the weakest role allowed on it.
ENDPOINTS = [
    ("/api/v1/auth/me", Role.VIEWER),
    ("/api/v1/machines", Role.VIEWER),
    ("/api/v1/machines/s/l1/m/latest", Role.VIEWER),
    ("/api/v1/machines/s/l1/m/completeness", Role.VIEWER),
    ("/api/v1/series", Role.VIEWER),
    ("/api/v1/series/1", Role.VIEWER),
    ("/api/v1/series/1/readings", Role.VIEWER),
    ("/api/v1/agents", Role.VIEWER),
    ("/api/v1/devices", Role.VIEWER),
    ("/api/v1/alerts", Role.VIEWER),
    ("/api/v1/alerts/rules", Role.VIEWER),
    ("/api/v1/alerts/shelves", Role.VIEWER),
    ("/api/v1/events", Role.VIEWER),
    ("/api/v1/commands/0b6f3a52-8c1e-4d0f-9a57-3c2b1e4f6a70", Role.OPERATOR),
    ("/api/v1/commands", Role.ADMIN),
    ("/api/v1/agents/pc-a/config", Role.ADMIN),
    ("/api/v1/agents/pc-a/config/history", Role.ADMIN),
    ("/api/v1/agents/pc-a/config/versions/7", Role.ADMIN),
    ("/api/v1/dead-letters", Role.ADMIN),
    ("/api/v1/identities", Role.ADMIN),
    ("/api/v1/identities/press-gw", Role.ADMIN),
    ("/api/v1/users", Role.ADMIN),
]


async def test_every_endpoint_needs_credentials_and_the_right_role(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        openapi = (await api.client.get("/api/v1/openapi.json")).json()
        documented = {"/api/v1" + p for p, ops in openapi["paths"].items() if "get" in ops}
        assert documented == {
            p.replace("/s/l1/m/", "/{site}/{line}/{machine}/")
            .replace("/1", "/{series_id}")
            .replace("/0b6f3a52-8c1e-4d0f-9a57-3c2b1e4f6a70", "/{command_id}")
            .replace("/pc-a/", "/{agent_id}/")
            .replace("/7", "/{version}")
            .replace("/identities/press-gw", "/identities/{name}")
            for p, _ in ENDPOINTS
        }
        for path, needed in ENDPOINTS:
            r = await api.client.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            for role in Role:
                r = await api.client.get(path, headers=api.auth(role))
                if role.rank < needed.rank:
                    assert r.status_code == 403, (path, role)
                else:
                    assert r.status_code in (200, 404), (path, role, r.text)


# The list endpoints' paging parameters (docs/api.md "Paging"): the role check comes first, so
# a bad cursor or limit tells nothing to a caller without the right to the list.
PAGED = [
    ("/api/v1/machines", Role.VIEWER),
    ("/api/v1/series", Role.VIEWER),
    ("/api/v1/agents", Role.VIEWER),
    ("/api/v1/dead-letters", Role.ADMIN),
]


async def test_paging_parameters_need_credentials_and_the_right_role(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        for path, needed in PAGED:
            for params in ({"limit": 2}, {"limit": 0, "after": "x"}):
                assert (await api.client.get(path, params=params)).status_code == 401, path
                for role in Role:
                    r = await api.client.get(path, params=params, headers=api.auth(role))
                    if role.rank < needed.rank:
                        assert r.status_code == 403, (path, role)
                    else:
                        assert r.status_code == (200 if "after" not in params else 422), path


# Every WebSocket under /api/v1 and the weakest role allowed on it (its credentials come in the
# first message, never in the URL; refusals close with 4401 / 4403, as on /ws).
WEBSOCKETS = [("/api/v1/identities/press-gw/watch", Role.ADMIN)]


async def _closed_with(url: str, first: str) -> int | None:
    async with connect(url) as ws:
        await ws.send(first)
        async with asyncio.timeout(15):
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed:
                return ws.close_code


async def test_every_websocket_needs_credentials_and_the_right_role(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        (v1,) = [r for r in api.app.routes if isinstance(r, Mount) and r.path == "/api/v1"]
        sockets = {
            f"/api/v1{c.path}"
            for c in iter_route_contexts(v1.routes)
            if isinstance(c.original_route, APIWebSocketRoute)
        }
        assert sockets == {
            p.replace("/identities/press-gw/", "/identities/{name}/") for p, _ in WEBSOCKETS
        }
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(api.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not serving.done()
                await asyncio.sleep(0.02)
            for path, needed in WEBSOCKETS:
                url = f"ws://127.0.0.1:{port}{path}"
                assert await _closed_with(url, '{"type": "ping"}') == 4401, path
                assert await _closed_with(url, '{"type": "auth", "token": "x.y.z"}') == 4401
                for role in Role:
                    auth = json.dumps({"type": "auth", "token": api.tokens[role]})
                    code = await _closed_with(url, auth)
                    # Allowed: past auth, refused only because no identity press-gw exists.
                    assert code == (4403 if role.rank < needed.rank else 4404), (path, role)
        finally:
            server.should_exit = True
            await serving


async def test_expired_and_forged_tokens_are_refused(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    ttl = 60
    async with running_api(pg_dsn, api=ApiConfig(access_token_ttl_s=ttl)) as api:
        headers = api.auth(Role.ADMIN)
        assert (await api.client.get("/api/v1/machines", headers=headers)).status_code == 200
        api.clock.now += ttl
        assert (await api.client.get("/api/v1/machines", headers=headers)).status_code == 401
        claims = {"iss": "millstream-hub", "sub": "admin", "role": "admin"}
        claims |= {"exp": int(api.clock.now) + 600}
        for forged in (
            jwt.encode(claims, "w" * 48, algorithm="HS256"),  # wrong secret
            jwt.encode(claims, None, algorithm="none"),
            jwt.encode(claims | {"iss": "elsewhere"}, SECRET, algorithm="HS256"),
        ):
            r = await api.client.get(
                "/api/v1/machines", headers={"Authorization": f"Bearer {forged}"}
            )
            assert r.status_code == 401
        # A correctly signed token is accepted: the refusals above were for the forgery.
        good = jwt.encode(claims, SECRET, algorithm="HS256")
        r = await api.client.get("/api/v1/machines", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200


async def test_login_and_refresh_rotation(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        r = await api.login("operator")
        assert r.status_code == 200
        first = r.json()
        assert first["token_type"] == "bearer"
        assert first["expires_in"] == 900
        me = await api.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        assert me.json() == {"subject": "operator", "role": "operator", "kind": "user"}

        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert r.status_code == 200
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"]
        # The old refresh token is spent...
        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert r.status_code == 401
        # ...and presenting it again revoked its family: the newer one is dead too.
        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert r.status_code == 401
        # Other sessions of the same user are untouched.
        r = await api.login("operator")
        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]}
        )
        assert r.status_code == 200


async def test_refresh_tokens_expire(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn, api=ApiConfig(refresh_token_ttl_s=3600)) as api:
        api.clock.now += 3600
        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": api.refresh[Role.VIEWER]}
        )
        assert r.status_code == 401


async def test_bad_logins_and_disabled_users(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        wrong = await api.login("viewer", "not the password")
        unknown = await api.login("nobody")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()  # no hint which part was wrong
        store = api.services.auth.store
        assert await store.set_disabled("viewer", True, 0)
        assert (await api.login("viewer")).status_code == 401
        r = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": api.refresh[Role.VIEWER]}
        )
        assert r.status_code == 401  # disabling revoked the user's sessions
        # Its access token, valid for minutes more, is refused too: checked on use.
        machines = "/api/v1/machines"
        deadline = time.monotonic() + USER_CHECK_S + 3
        while (await api.client.get(machines, headers=api.auth(Role.VIEWER))).status_code != 401:
            assert time.monotonic() < deadline, "a disabled user's token kept working"
            await asyncio.sleep(0.2)
        # A demoted admin loses admin rights before their token expires.
        assert (await api.client.get("/api/v1/users", headers=api.auth(Role.ADMIN))).is_success
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("UPDATE users SET role = 'viewer' WHERE name = 'admin'")
        finally:
            await conn.close()
        deadline = time.monotonic() + USER_CHECK_S + 3
        while (await api.client.get("/api/v1/users", headers=api.auth(Role.ADMIN))).is_success:
            assert time.monotonic() < deadline, "a demoted admin kept admin rights"
            await asyncio.sleep(0.2)
        demoted = await api.client.get("/api/v1/users", headers=api.auth(Role.ADMIN))
        assert demoted.status_code == 403
        assert (await api.client.get(machines, headers=api.auth(Role.ADMIN))).is_success


async def test_api_keys_are_scoped_to_their_role(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        key = await api.add_api_key("historian", Role.VIEWER)
        ok = await api.client.get("/api/v1/series", headers={"X-API-Key": key})
        assert ok.status_code == 200
        r = await api.client.get("/api/v1/dead-letters", headers={"X-API-Key": key})
        assert r.status_code == 403
        r = await api.client.get("/api/v1/series", headers={"X-API-Key": key[:-2] + "xx"})
        assert r.status_code == 401
        admin_key = await api.add_api_key("ops", Role.ADMIN)
        r = await api.client.get("/api/v1/dead-letters", headers={"X-API-Key": admin_key})
        assert r.status_code == 200


async def test_login_is_rate_limited(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn, api=ApiConfig(logins_per_minute=6)) as api:
        codes = [(await api.login("admin", "guess")).status_code for _ in range(8)]
        assert codes[:5] == [401] * 5
        assert codes[-1] == 429
        r = await api.login("admin", PASSWORD)
        assert r.status_code == 429  # even the right password waits
        assert int(r.headers["retry-after"]) >= 1
        api.clock.now += 60
        assert (await api.login("admin", PASSWORD)).status_code == 200


async def test_guessing_from_one_address_does_not_lock_the_user_out_elsewhere(
    pg_dsn: str,
) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn, api=ApiConfig(logins_per_minute=6)) as api:
        codes = [(await api.login("admin", "guess")).status_code for _ in range(8)]
        assert codes[-1] == 429  # this address is slowed down
        login = {"username": "admin", "password": PASSWORD}

        async def from_address(ip: str, body: dict[str, str]) -> int:
            transport = httpx.ASGITransport(app=api.app, client=(ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as other:
                return (await other.post("/api/v1/auth/login", json=body)).status_code

        # The real admin, elsewhere, still logs in.
        assert await from_address("198.51.100.7", login) == 200
        # Guessing spread over many addresses meets the per-user backstop (ten addresses' worth).
        wrong = {"username": "admin", "password": "guess"}
        spread = [await from_address(f"203.0.113.{i}", wrong) for i in range(80)]
        assert 429 in spread


async def test_requests_are_rate_limited_per_user(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn, api=ApiConfig(requests_per_minute=30)) as api:
        codes = [
            (await api.client.get("/api/v1/agents", headers=api.auth(Role.VIEWER))).status_code
            for _ in range(7)
        ]
        assert codes[-1] == 429


async def test_cors_is_closed_and_requests_carry_ids(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        r = await api.client.options(
            "/api/v1/machines",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in r.headers
        r = await api.client.get("/api/v1/machines", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = await api.client.get("/api/v1/machines", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
