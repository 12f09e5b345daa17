"""Helpers for API tests: a migrated database, the v1 app over ASGI, users and tokens."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import ClientConnection

import wire
from hub.api.v1 import ApiServices, mount_api, open_api_services
from hub.auth import Role, hash_password, make_api_key
from hub.config import ApiConfig, HttpConfig, HubConfig, MqttConfig
from hub.live import Fanout
from hub.runtime import Hub
from hub.storage import TelemetryBatch, WriteBatch, open_storage

SECRET = "test-signing-secret-" + "0123456789abcdef" * 2
PASSWORD = "correct horse battery"


@dataclass
class Clock:
    """A wall clock tests move by hand (seconds)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    """A running v1 app: its client, services, clock and a token per role."""

    client: httpx.AsyncClient
    services: ApiServices
    clock: Clock
    app: FastAPI
    tokens: dict[Role, str] = field(default_factory=dict)
    refresh: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"username": name, "password": password}
        )

    async def add_api_key(self, name: str, role: Role) -> str:
        key_id, key, hashed = make_api_key()
        assert await self.services.auth.store.add_api_key(key_id, name, role, hashed, 0)
        return key


async def migrate(url: str) -> None:
    async with open_storage(url) as storage:
        await storage.migrate()


async def store_readings(
    url: str, site: str, machine: str, tag: str, points: list[tuple[int, float]]
) -> None:
    """Write readings through the ingest's storage (so rollups are filled as in production)."""
    async with open_storage(url) as storage:
        for i in range(0, len(points), 5000):
            chunk = points[i : i + 5000]
            readings = [wire.Reading(tag=tag, ts=ts, v=v, q="good") for ts, v in chunk]
            await storage.write(
                WriteBatch(telemetry=[TelemetryBatch(site, "l1", machine, "src", i, readings)])
            )


@asynccontextmanager
async def running_api(
    url: str, *, api: ApiConfig | None = None, users: bool = True
) -> AsyncIterator[Api]:
    """The v1 app on a migrated database, with viewer/operator/admin users logged in."""
    config = HubConfig(storage=url, jwt_secret=SECRET, api=api or ApiConfig())
    clock = Clock()
    app = FastAPI()
    async with open_api_services(config, Fanout(), clock=clock) as services:
        mount_api(app, services, CollectorRegistry())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            out = Api(client, services, clock, app)
            if users:
                for role in Role:
                    hashed = hash_password(PASSWORD)
                    await services.auth.store.add_user(role.value, role, hashed, 0)
                    pair = await services.auth.login(role.value, PASSWORD)
                    out.tokens[role] = pair.access_token
                    out.refresh[role] = pair.refresh_token
            yield out


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    """A name no other test uses on the shared broker."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running_hub(
    mqtt_url: str, storage: str, flush_ms: int = 10
) -> AsyncIterator[tuple[Hub, str]]:
    """A whole hub (ingest + HTTP API + /ws) on a free port; yields it and its base URL."""
    port = free_port()
    config = HubConfig(
        mqtt=MqttConfig(
            url=mqtt_url,
            client_id=unique("hub-"),
            share_group=unique("g"),
            session_expiry_s=300,
        ),
        storage=storage,
        http=HttpConfig(host="127.0.0.1", port=port),
        flush_ms=flush_ms,
        jwt_secret=SECRET,
    )
    hub = Hub(config)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop), name="hub-under-test")
    ready = asyncio.create_task(hub.wait_ready(30))
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        await task
    await ready
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                (await client.get(f"{base}/health/live")).raise_for_status()
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    try:
        yield hub, base
    finally:
        stop.set()
        await task


def now_ms() -> int:
    """Wall time in epoch milliseconds, as readings carry it."""
    return time.time_ns() // 1_000_000


async def next_message(ws: ClientConnection, kind: str, within: float = 15.0) -> dict[str, Any]:
    """The next message of type `kind` on a live socket (others skipped); `within` only bounds a
    broken test."""
    async with asyncio.timeout(within):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg  # type: ignore[no-any-return]
