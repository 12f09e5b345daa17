"""A whole hub over real sockets (Mosquitto → ingest → PostgreSQL → REST): units from meta
messages, and machines judged by their agent's state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from apitest import PASSWORD, migrate, now_ms, running_hub, unique
from paho.mqtt.enums import CallbackAPIVersion

import wire
from hub.auth import AuthStore, Role, hash_password
from hub.sql import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Device:
    """An MQTT device publishing straight to the broker (QoS 1, waits for PUBACK)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("dev-"))
        self.client.connect(host, port)
        self.client.loop_start()
        self.seq = 0

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        def send() -> None:
            self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

        await asyncio.to_thread(send)

    async def telemetry(self, site: str, machine: str, readings: list[wire.Reading]) -> None:
        self.seq += 1
        payload = wire.encode_telemetry("dev", self.seq, readings)
        await self.publish(wire.telemetry_topic(site, "l1", machine), payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@asynccontextmanager
async def hub_and_device(
    mosquitto: Any, pg_dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Device]]:
    await migrate(pg_dsn)
    async with open_database(pg_dsn) as db:
        await AuthStore(db).add_user("watcher", Role.VIEWER, hash_password(PASSWORD), 0)
    device = Device(mosquitto.host, mosquitto.port)
    try:
        async with (
            running_hub(mosquitto.url, pg_dsn) as (_hub, base),
            httpx.AsyncClient(base_url=base) as http,
        ):
            r = await http.post(
                "/api/v1/auth/login", json={"username": "watcher", "password": PASSWORD}
            )
            r.raise_for_status()
            http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            yield http, device
    finally:
        device.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` until true (a liveness bound for a loaded machine, not a measurement)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 -- the state is in another process's answer
            await asyncio.sleep(0.1)


async def test_series_carry_the_units_the_device_publishes(mosquitto: Any, pg_dsn: str) -> None:
    site = unique("s")
    async with hub_and_device(mosquitto, pg_dsn) as (http, device):
        meta_topic = wire.meta_topic(site, "l1", "oven")
        meta = {
            "zone_temp": wire.TagMeta(unit="°C", description="Zone 1 air temperature"),
            "door": wire.TagMeta(description="Door closed"),
        }
        await device.publish(meta_topic, wire.encode_meta(now_ms(), meta), retain=True)
        ts = now_ms()
        readings = [
            wire.Reading(tag="zone_temp", ts=ts, v=181.5),
            wire.Reading(tag="door", ts=ts, v=True),
            wire.Reading(tag="recipe", ts=ts, v="bread"),
        ]

        async def units() -> dict[str, tuple[str | None, str | None]]:
            await device.telemetry(site, "oven", readings)  # republished until it lands
            r = await http.get("/api/v1/series", params={"site": site})
            return {s["tag"]: (s["unit"], s["description"]) for s in r.json()}

        async def arrived() -> bool:
            got = await units()
            return len(got) == 3 and got["zone_temp"][0] is not None

        await eventually(arrived)
        assert await units() == {
            "zone_temp": ("°C", "Zone 1 air temperature"),
            "door": (None, "Door closed"),
            "recipe": (None, None),
        }
        # History carries the series with its unit too (what the chart title shows).
        [temp] = [
            s
            for s in (await http.get("/api/v1/series", params={"site": site})).json()
            if s["tag"] == "zone_temp"
        ]
        history = (await http.get(f"/api/v1/series/{temp['id']}/readings")).json()
        assert history["series"]["unit"] == "°C"

        # A new meta replaces the old: the unit changes, the description left out disappears.
        await device.publish(
            meta_topic,
            wire.encode_meta(now_ms() + 1, {"zone_temp": wire.TagMeta(unit="K")}),
            retain=True,
        )

        async def replaced() -> bool:
            got = await units()
            return got["zone_temp"] == ("K", None) and got["door"] == (None, None)

        await eventually(replaced)
        await device.publish(meta_topic, b"", retain=True)  # leave the shared broker clean


class FakeAgent:
    """An MQTT client that speaks for an agent: status with its machines, and the agent's will."""

    def __init__(self, host: str, port: int, agent_id: str) -> None:
        self.topic = wire.agent_status_topic(agent_id)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("agent-"))
        self.client.will_set(self.topic, wire.encode_agent_status("offline", now_ms()), 1, True)
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()

    async def online(self, site: str, machines: list[str]) -> None:
        payload = wire.encode_agent_status(
            "online",
            now_ms(),
            site=site,
            line="l1",
            poll_errors={machines[0]: 2},
            devices={m: wire.DeviceStatus(online=True) for m in machines},
        )

        def send() -> None:
            self.client.publish(self.topic, payload, qos=1, retain=True).wait_for_publish(10)

        await asyncio.to_thread(send)

    def die(self) -> None:
        """Drop the connection without DISCONNECT, as a killed process does: the will goes out."""
        self.client.loop_stop()
        sock = self.client.socket()
        assert sock is not None
        sock.close()


async def test_a_dead_agents_machines_are_offline_with_the_reason(
    mosquitto: Any, pg_dsn: str
) -> None:
    site, agent_id = unique("s"), unique("pc-")
    async with hub_and_device(mosquitto, pg_dsn) as (http, device):
        agent = FakeAgent(mosquitto.host, mosquitto.port, agent_id)
        try:

            async def fleet() -> dict[str, dict[str, Any]]:
                machines = (await http.get("/api/v1/machines")).json()
                return {m["machine"]: m for m in machines if m["site"] == site}

            async def all_online() -> bool:
                await agent.online(site, ["press", "oven"])  # republished until it lands
                for name in ("press", "oven"):
                    await device.telemetry(site, name, [wire.Reading(tag="t", ts=now_ms(), v=1.0)])
                got = await fleet()
                return len(got) == 2 and all(m["state"] == "online" for m in got.values())

            await eventually(all_online)
            got = await fleet()
            assert {m["agent"] for m in got.values()} == {agent_id}
            assert got["press"]["reason"] == "2 poll errors since agent start"
            assert got["oven"]["reason"] == "data flowing"

            agent.die()

            async def all_offline() -> bool:
                got = await fleet()
                return all(m["state"] == "offline" for m in got.values())

            await eventually(all_offline, within=30)
            got = await fleet()
            assert {m["reason"] for m in got.values()} == {f"agent {agent_id} is offline"}
            assert {m["agent"] for m in got.values()} == {agent_id}
            assert {m["agent_state"] for m in got.values()} == {"offline"}
        finally:
            await device.publish(agent.topic, b"", retain=True)  # leave the shared broker clean
