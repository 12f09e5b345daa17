"""No secret reaches a log: a full pipeline run, every credential it used, grepped for in every log.

simulator (in-process, Modbus) → `edge-agent run` with `password_file` → a private Mosquitto that
takes only known users → `millstream-hub serve` (broker password from `password_file` too) on
PostgreSQL. The test logs in, refreshes its tokens, makes and uses an API key, and opens `/ws`
the way the dashboard does (token in the first message) and the way third-party clients still
may (`?token=`, which uvicorn logs with the path). Then the hub's, the agent's and the broker's
logs must contain none of: the login password (and a wrong one), access and refresh tokens, the
API key's secret, either broker password and the JWT signing secret.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashtest import ADMIN, PASSWORD, BrokerLogin, Plant, Proc, hub_cli, running_plant
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.harness import Mosquitto

pytestmark = pytest.mark.asyncio(loop_scope="session")


def secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


async def next_message(ws: ClientConnection, kind: str, within: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            doc: dict[str, Any] = json.loads(await ws.recv())
            if doc["type"] == kind:
                return doc


async def all_online(client: httpx.AsyncClient, plant: Plant, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 90
    machines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = await client.get("/api/v1/machines", headers=headers)
        assert r.status_code == 200, r.text
        machines = r.json()
        online = {
            f"{m['site']}/{m['line']}/{m['machine']}" for m in machines if m["state"] == "online"
        }
        if online >= set(plant.machines):
            return
        await asyncio.sleep(0.5)
    pytest.fail(
        f"machines not online: {machines}\n--- agent ---\n{plant.agent.text()}"
        f"\n--- hub ---\n{plant.hub.text()}"
    )


async def live(url: str, machine: str, first_message: str | None) -> None:
    """Open /ws at `url`, authenticate (with `first_message` if given), get live readings."""
    async with connect(url) as ws:
        if first_message is not None:
            await ws.send(first_message)
        await next_message(ws, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "machines": [machine]}))
        await next_message(ws, "readings")


async def refused(url: str) -> None:
    """Open /ws at `url` and be refused with 4401."""
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws, "welcome")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def stop(proc: Proc) -> None:
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0, proc.text()


async def test_no_password_token_or_key_in_any_log(
    mosquitto_factory: Callable[..., Mosquitto],
    pg_dsn: str,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    agent_pw, hub_pw, jwt_secret = secret("agent-broker"), secret("hub-broker"), secret("jwt") * 2
    broker = mosquitto_factory(persistence=False, users={"agent": agent_pw, "hub": hub_pw})
    logins = []
    for user, password in (("agent", agent_pw), ("hub", hub_pw)):
        path = tmp_path / f"{user}.mqtt-password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        logins.append(BrokerLogin(user, path))
    agent_login, hub_login = logins
    secrets: dict[str, str] = {
        "login password": PASSWORD,
        "agent's broker password": agent_pw,
        "hub's broker password": hub_pw,
        "JWT secret": jwt_secret,
    }
    async with (
        running_plant(
            broker,
            pg_dsn,
            tmp_path,
            procs,
            site_prefix="k",
            seed=7,
            jwt_secret=jwt_secret,
            hub_login=hub_login,
            agent_login=agent_login,
        ) as plant,
        httpx.AsyncClient(base_url=plant.base, timeout=30) as client,
    ):
        ws_base = plant.base.replace("http://", "ws://") + "/ws"
        machine = plant.machines[0]

        # Over the API: a wrong password, a login, a refresh, an API key.
        wrong = secret("wrong-password")
        secrets["wrong password"] = wrong
        r = await client.post("/api/v1/auth/login", json={"username": ADMIN, "password": wrong})
        assert r.status_code == 401
        r = await client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        first = r.json()
        r = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert r.status_code == 200, r.text
        tokens = r.json()
        access = tokens["access_token"]
        secrets |= {
            "first access token": first["access_token"],
            "first refresh token": first["refresh_token"],
            "access token": access,
            "refresh token": tokens["refresh_token"],
        }
        key = (
            await asyncio.to_thread(
                hub_cli,
                *("users", "api-key", "historian", "--role", "viewer"),
                *("--config", str(plant.hub_config)),
            )
        ).strip()
        secrets["API key"] = key
        secrets["API key's secret"] = key.split("_", 2)[2]
        await all_online(client, plant, {"Authorization": f"Bearer {access}"})
        r = await client.get("/api/v1/machines", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        # Clients that put credentials in a URL: answered or not, the URL is never logged whole.
        for params in ({"token": access}, {"api_key": key}):
            await client.get("/api/v1/machines", params=params)

        # /ws the dashboard's way, then with ?token= (access token and API key), then refused.
        await live(ws_base, machine, json.dumps({"type": "auth", "token": access}))
        await live(f"{ws_base}?token={access}", machine, None)
        await live(f"{ws_base}?token={key}", machine, None)
        await refused(f"{ws_base}?token={tokens['refresh_token']}")

        await asyncio.to_thread(stop, plant.agent)
        await asyncio.to_thread(stop, plant.hub)
    await asyncio.to_thread(broker.stop)  # Mosquitto writes its log out as it stops

    logs = {
        "hub": plant.hub.log.read_text(errors="replace"),
        "agent": plant.agent.log.read_text(errors="replace"),
        "broker": broker.log_path.read_text(errors="replace"),
    }
    leaks = [
        f"{what} in the {name}'s log: {line[:300]}"
        for name, text in logs.items()
        for line in text.splitlines()
        for what, value in secrets.items()
        if value in line
    ]
    assert not leaks, "\n".join(leaks)
    # The lines that would carry them are there, redacted: uvicorn logs each socket's path.
    assert logs["hub"].count("WebSocket /ws?token=[redacted]") == 3, logs["hub"][-3000:]
    assert "u'agent'" in logs["broker"], logs["broker"][-3000:]  # the agent logged in
