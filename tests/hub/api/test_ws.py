"""WebSocket `/ws` over real sockets: Mosquitto → hub ingest → PostgreSQL → fan-out → client."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from apitest import PASSWORD, migrate, next_message, now_ms, running_hub, unique
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import wire
from hub.auth import AuthStore, Role, hash_password
from hub.runtime import Hub
from hub.sql import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The figure: a reading published to MQTT reaches a subscriber within 1 s.
LIVE_TIMEOUT_S = 1.0


class Publisher:
    """A plain MQTT publisher (QoS 1, waits for PUBACK)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
        self.client.connect(host, port)
        self.client.loop_start()
        self.seq = 0

    def _publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    async def telemetry(self, machine: str, readings: list[wire.Reading]) -> None:
        self.seq += 1
        payload = wire.encode_telemetry("pub", self.seq, readings)
        await asyncio.to_thread(self._publish, f"ms/v1/{machine}/telemetry", payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _token(base: str) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{base}/api/v1/auth/login", json={"username": "watcher", "password": PASSWORD}
        )
        r.raise_for_status()
        return str(r.json()["access_token"])


@asynccontextmanager
async def live_hub(
    mosquitto: Any, pg_dsn: str, flush_ms: int = 10
) -> AsyncIterator[tuple[str, str, Publisher, Hub]]:
    await migrate(pg_dsn)
    async with open_database(pg_dsn) as db:
        await AuthStore(db).add_user("watcher", Role.VIEWER, hash_password(PASSWORD), 0)
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        async with running_hub(mosquitto.url, pg_dsn, flush_ms) as (hub, base):
            token = await _token(base)
            yield base.replace("http://", "ws://") + "/ws", token, publisher, hub
    finally:
        publisher.close()


async def test_a_reading_published_to_mqtt_reaches_a_subscriber(
    mosquitto: Any, pg_dsn: str
) -> None:
    machine = f"{unique('s')}/l1/m1"
    async with (
        live_hub(mosquitto, pg_dsn) as (url, token, publisher, _hub),
        connect(f"{url}?token={token}", proxy=None) as ws,
    ):
        assert (await next_message(ws, "welcome"))["user"] == "watcher"
        await ws.send(json.dumps({"type": "subscribe", "machines": [machine]}))
        assert (await next_message(ws, "subscribed"))["machines"] == [machine]
        ts = now_ms()
        await publisher.telemetry(machine, [wire.Reading(tag="temp", ts=ts, v=21.5, q="good")])
        msg = await next_message(ws, "readings", LIVE_TIMEOUT_S)
        assert msg == {
            "type": "readings",
            "machine": machine,
            "readings": [{"tag": "temp", "ts": ts, "v": 21.5, "q": "good"}],
        }
        # A later subscriber gets the newest values at once (a snapshot), then live data.
        async with connect(f"{url}?token={token}", proxy=None) as late:
            await next_message(late, "welcome")
            await late.send(json.dumps({"type": "subscribe", "machines": [machine]}))
            snapshot = await next_message(late, "readings")
            assert snapshot["readings"] == msg["readings"]
        # Unsubscribe stops this machine.
        await ws.send(json.dumps({"type": "unsubscribe", "machines": [machine]}))
        assert (await next_message(ws, "unsubscribed"))["machines"] == []
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_message(ws, "pong"))["ts"] > 0


async def _stored(pg_dsn: str, site: str) -> int:
    conn = await asyncpg.connect(pg_dsn)
    try:
        sql = (
            "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id WHERE s.site = $1"
        )
        return int(await conn.fetchval(sql, site))
    finally:
        await conn.close()


async def test_readings_go_live_before_their_commit_and_late_subscribers_start_from_them(
    mosquitto: Any, pg_dsn: str
) -> None:
    site = unique("s")
    machine = f"{site}/l1/m1"
    # A flush window far longer than the live timeout: the reading can only arrive in time if
    # it is announced on validation, not after its commit.
    async with (
        live_hub(mosquitto, pg_dsn, flush_ms=4000) as (url, token, publisher, _hub),
        connect(f"{url}?token={token}", proxy=None) as ws,
    ):
        await next_message(ws, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "machines": [machine]}))
        await next_message(ws, "subscribed")
        ts = now_ms()
        await publisher.telemetry(machine, [wire.Reading(tag="temp", ts=ts, v=7.5, q="good")])
        msg = await next_message(ws, "readings", LIVE_TIMEOUT_S)
        assert msg["readings"] == [{"tag": "temp", "ts": ts, "v": 7.5, "q": "good"}]
        # Not stored yet, so not in storage's latest values: the snapshot still has it.
        async with connect(f"{url}?token={token}", proxy=None) as late:
            await next_message(late, "welcome")
            await late.send(json.dumps({"type": "subscribe", "machines": [machine]}))
            snapshot = await next_message(late, "readings")
        assert await _stored(pg_dsn, site) == 0
        assert snapshot["readings"] == msg["readings"]
    assert await _stored(pg_dsn, site) == 1  # committed when the hub stopped (it drains)


async def test_tokens_are_required(mosquitto: Any, pg_dsn: str) -> None:
    async with live_hub(mosquitto, pg_dsn) as (url, token, _publisher, _hub):
        for query in ("", "?token=forged"):
            async with connect(url + query, proxy=None) as ws:
                if not query:
                    await ws.send(json.dumps({"type": "subscribe", "machines": ["a/b/c"]}))
                with pytest.raises(ConnectionClosed) as closed:
                    await next_message(ws, "welcome")
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4401
        # The token may come as the first message instead of in the URL.
        async with connect(url, proxy=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert (await next_message(ws, "welcome"))["user"] == "watcher"


async def test_odd_frames_get_an_error_reply_not_a_dropped_connection(
    mosquitto: Any, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A binary frame or a series id beyond PostgreSQL's integer is the client's mistake: it is
    told, stays connected, and the hub logs no error (issue 18)."""
    async with live_hub(mosquitto, pg_dsn) as (url, token, _publisher, _hub):
        # Before the login, a binary frame is refused like any non-auth message.
        async with connect(url, proxy=None) as ws:
            await ws.send(b"\x00\x01")
            with pytest.raises(ConnectionClosed) as closed:
                await next_message(ws, "welcome")
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
        async with connect(url, proxy=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await next_message(ws, "welcome")
            await ws.send(b"\x00\x01")
            assert "binary frames" in (await next_message(ws, "error"))["error"]
            await ws.send(json.dumps({"type": "subscribe", "series": [2**31]}))
            assert "series ids" in (await next_message(ws, "error"))["error"]
            await ws.send(json.dumps({"type": "ping"}))
            await next_message(ws, "pong")  # still connected and served
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_stalled_client_does_not_delay_another(mosquitto: Any, pg_dsn: str) -> None:
    machine = f"{unique('s')}/l1/m1"
    subscribe = json.dumps({"type": "subscribe", "machines": [machine]})
    # The stalled client stops reading after its first messages (max_queue=1: the client
    # library then stops reading the socket), and a tiny receive buffer without compression
    # keeps the kernel from absorbing the backlog, so the hub's sends to it really block.
    async with live_hub(mosquitto, pg_dsn) as (url, token, publisher, hub):
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        stalled_ws = connect(
            f"{url}?token={token}",
            sock=sock,
            proxy=None,
            max_queue=1,
            max_size=None,
            compression=None,
        )
        healthy_ws = connect(f"{url}?token={token}", proxy=None, max_size=None)
        async with stalled_ws as stalled, healthy_ws as healthy:
            for ws in (stalled, healthy):
                await next_message(ws, "welcome")
                await ws.send(subscribe)
                await next_message(ws, "subscribed")
            base = now_ms() - 60_000
            # Megabytes of readings: far more than the socket buffers hold for the stalled one.
            for round_no in range(25):
                readings = [
                    wire.Reading(
                        tag=f"t{i % 50}", ts=base + round_no * 1000 + i // 50, v=float(i), q="good"
                    )
                    for i in range(5000)
                ]
                await publisher.telemetry(machine, readings)
                # The healthy client keeps receiving while the other is stalled.
                marker_ts = now_ms()
                marker = wire.Reading(tag="marker", ts=marker_ts, v=float(round_no), q="good")
                await publisher.telemetry(machine, [marker])
                async with asyncio.timeout(LIVE_TIMEOUT_S * 5):
                    while True:
                        msg = await next_message(healthy, "readings")
                        if any(
                            r["tag"] == "marker" and r["v"] == round_no for r in msg["readings"]
                        ):
                            break
            # The stalled client really was behind: the hub skipped history for it (and closes
            # it once a send has been blocked for SEND_TIMEOUT_S).
            assert hub.api.fanout.coalesced > 0
