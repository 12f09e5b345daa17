"""Three `millstream-hub serve` processes on one share group, with PostgreSQL and Redis; one is
SIGKILLed while a publisher keeps sending, then restarted with the same client id. PostgreSQL
holds every reading exactly once, and every WebSocket client of a live instance gets every
reading of the sites it watches, whichever instance received it (Redis per-site channels); each
instance receives from Redis exactly the messages of the sites its clients watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
import redis.asyncio as aioredis
from bridgetest import unique
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import wire
from hub.auth import AuthStore, Role, hash_password
from hub.sql import open_database
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="session")

SITES = 3
MACHINES = 2  # per site, line l1
READINGS = 25  # per batch
ROUNDS = 60  # one batch per machine each
KILL_AT = 20  # the round before which instance 2 dies
PASSWORD = "correct horse battery"
Point = tuple[str, int]  # (machine, ts)


class Publisher:
    """Batches for every machine, round by round, QoS 1 (each waits for its PUBACK)."""

    def __init__(self, host: str, port: int, machines: list[str], t0: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
        self.client.connect(host, port)
        self.client.loop_start()
        self.machines = machines
        self.t0 = t0
        self.sent: set[Point] = set()

    def _round(self, n: int) -> None:
        for i, machine in enumerate(self.machines):
            ts = [self.t0 + n * READINGS + k for k in range(READINGS)]
            readings = [wire.Reading(tag="t", ts=t, v=float(t % 1000)) for t in ts]
            site, line, name = machine.split("/")
            payload = wire.encode_telemetry(f"ag{i}", n + 1, readings)
            info = self.client.publish(wire.telemetry_topic(site, line, name), payload, qos=1)
            info.wait_for_publish(10)
            self.sent.update((machine, t) for t in ts)

    async def round(self, n: int) -> None:
        await asyncio.to_thread(self._round, n)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LiveClient:
    """A WebSocket client of one instance, recording every (machine, ts) it is sent."""

    def __init__(self, url: str, machines: list[str]) -> None:
        self.url = url
        self.machines = machines
        self.got: set[Point] = set()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None

    async def start(self) -> None:
        self._ws = await connect(self.url, proxy=None)
        await self._ws.send(json.dumps({"type": "subscribe", "machines": self.machines}))
        async with asyncio.timeout(15):
            while json.loads(await self._ws.recv())["type"] != "subscribed":
                pass
        self._task = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                msg = json.loads(text)
                if msg["type"] == "readings":
                    self.got.update((msg["machine"], r["ts"]) for r in msg["readings"])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await self._task


class RedisTap:
    """Every message on the deployment's site channels, counted per channel: what each
    instance would receive if it subscribed to everything."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.prefix = prefix
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe(f"{self.prefix}:*")
        self._task = asyncio.create_task(self._count())

    async def _count(self) -> None:
        while True:
            msg = await self.pubsub.get_message(timeout=1.0)
            if msg is not None and msg["type"] == "pmessage":
                self.counts[msg["channel"].decode().removeprefix(self.prefix + ":")] += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self.client.aclose()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """Poll `check` until true; a liveness bound for a broken run, not a measure."""
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def scrape(port: int) -> dict[str, float]:
    """The instance's Redis live metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for name, value in re.findall(
        r'^(millstream_redis_live_(?:messages_total\{direction="\w+"\}|channels)) (\S+)$',
        text,
        re.M,
    ):
        out[name] = float(value)
    return out


def received(metrics: dict[str, float]) -> int:
    return int(metrics.get('millstream_redis_live_messages_total{direction="received"}', 0))


def published(metrics: dict[str, float]) -> int:
    return int(metrics.get('millstream_redis_live_messages_total{direction="published"}', 0))


async def channels(port: int) -> int:
    async with httpx.AsyncClient() as http:
        ready = (await http.get(f"http://127.0.0.1:{port}/health/ready")).json()
    return int(ready["redis"]["channels"])


async def stored(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM readings")
        counted = await conn.fetchval("SELECT coalesce(sum(count), 0) FROM rollup_minute")
    finally:
        await conn.close()
    return int(rows), int(counted)


@pytest.mark.slow
async def test_three_hubs_one_killed_nothing_lost_or_doubled_and_live_everywhere(
    mosquitto: Any, pg_dsn: str, redis: Any, tmp_path: Path, hubs: list[HubProcess]
) -> None:
    sites = [unique(f"s{i}-") for i in range(SITES)]
    machines = [f"{s}/l1/m{m}" for s in sites for m in range(MACHINES)]
    channel = unique("live-")
    group, secret = unique("g"), os.urandom(24).hex()
    ports = [free_port() for _ in range(3)]
    configs = []
    for i, port in enumerate(ports):
        config = tmp_path / f"hub{i}.yaml"
        config.write_text(
            f"mqtt: {{url: '{mosquitto.url}', client_id: {unique(f'hub{i}-')},"
            f" share_group: {group}, session_expiry_s: 300}}\n"
            f"storage: '{pg_dsn}'\n"
            f"http: {{host: 127.0.0.1, port: {port}}}\n"
            # Instance 2 commits a second after a batch arrives: when it is killed, what it
            # received in the last second is validated and announced but not committed.
            f"flush_ms: {1000 if i == 2 else 20}\n"
            f"redis: {{url: '{redis.url}', channel: '{channel}', key_prefix: '{channel}:k:'}}\n"
        )
        configs.append(config)
    hub_cli(configs[0], "migrate")
    async with open_database(pg_dsn) as db:
        await AuthStore(db).add_user("watcher", Role.VIEWER, hash_password(PASSWORD), 0)
    # One signing secret (the harness would give each process its own): a token from any
    # instance is good on every one, as behind a load balancer.
    env = {"MILLSTREAM_JWT_SECRET": secret}
    for i, config in enumerate(configs):
        hubs.append(HubProcess(config, tmp_path / f"hub{i}.log", env))
    await asyncio.gather(*(wait_ready(port, hub) for port, hub in zip(ports, hubs, strict=True)))
    async with httpx.AsyncClient() as http:
        login = await http.post(
            f"http://127.0.0.1:{ports[0]}/api/v1/auth/login",
            json={"username": "watcher", "password": PASSWORD},
        )
        login.raise_for_status()
        token = login.json()["access_token"]

    def client_of(i: int) -> LiveClient:
        # Instance i's client watches sites i and i+1: every site is watched on two instances,
        # and each instance leaves one site alone.
        watched = [m for m in machines if m.split("/")[0] in (sites[i], sites[(i + 1) % SITES])]
        return LiveClient(f"ws://127.0.0.1:{ports[i]}/ws?token={token}", watched)

    tap = RedisTap(redis.url, channel)
    await tap.start()
    clients = [client_of(i) for i in range(3)]
    publisher = Publisher(
        mosquitto.host, mosquitto.port, machines, time.time_ns() // 1_000_000 - 3_600_000
    )
    try:
        for c in clients:
            await c.start()

        async def joined() -> bool:
            return [await channels(p) for p in ports] == [2, 2, 2]

        await eventually(joined)

        for n in range(ROUNDS):
            await publisher.round(n)
            if n == KILL_AT:
                hubs[2].kill()  # SIGKILL, mid-stream: batches received but not yet committed
            await asyncio.sleep(0.05)

        # Back with the same client id: its session kept its share of what was sent meanwhile.
        hubs.append(HubProcess(configs[2], tmp_path / "hub2-again.log", env))
        await wait_ready(ports[2], hubs[-1])
        total = ROUNDS * len(machines) * READINGS

        async def all_stored() -> bool:
            return await stored(pg_dsn) == (total, total)

        await eventually(all_stored)

        # Every client of an instance that stayed up got every reading of the sites it
        # watches: about two thirds of them were received and stored by another instance.
        def complete(c: LiveClient) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return {p for p in publisher.sent if p[0] in c.machines} <= c.got

            return check

        for c in clients[:2]:
            await eventually(complete(c))

        # A client of the restarted instance gets live updates again, whoever receives them.
        clients.append(clients[2])  # its first one, cut off by the kill (closed at the end)
        clients[2] = client_of(2)
        await clients[2].start()
        await eventually(joined)
        before = set(publisher.sent)
        await publisher.round(ROUNDS)
        for c in clients[:3]:
            fresh = {p for p in publisher.sent - before if p[0] in c.machines}

            async def got_fresh(c: LiveClient = c, fresh: set[Point] = fresh) -> bool:
                return fresh <= c.got

            await eventually(got_fresh)
        total += len(machines) * READINGS
        await eventually(all_stored)
        assert await stored(pg_dsn) == (total, total)  # every reading once, counted once

        # Each instance that stayed up received from Redis exactly the messages of its two
        # sites' channels; subscribed to everything it would have received all of them.
        for i in (0, 1):
            mine = (sites[i], sites[(i + 1) % SITES])

            async def only_mine(i: int = i, mine: tuple[str, str] = mine) -> bool:
                return received(await scrape(ports[i])) == sum(tap.counts[s] for s in mine)

            await eventually(only_mine)
        figures = {i: await scrape(p) for i, p in enumerate(ports)}
        everything = sum(tap.counts.values())
        # Instance 2 announced batches it had not committed when killed; the broker gave them
        # to it again after the restart, and it announced them again (stored once all the same).
        assert everything > (ROUNDS + 1) * len(machines)
        print(f"\nredis live messages: all site channels {everything} {dict(tap.counts)}")
        for i, m in figures.items():
            print(f"instance {i}: received {received(m)} of {everything}; {m}")
        assert all(received(figures[i]) < everything for i in (0, 1))
        # What a surviving instance announced itself is a fraction of what its clients got:
        # the rest came over Redis from the other two.
        for i in (0, 1):
            mine = (sites[i], sites[(i + 1) % SITES])
            assert published(figures[i]) < sum(tap.counts[s] for s in mine)
    finally:
        for c in clients:
            await c.close()
        publisher.close()
        await tap.close()
