"""The conformance check over the API: the WebSocket `/api/v1/identities/{name}/watch` against a
real Mosquitto with its dynamic security plugin and a real hub process. Credentials in the first
message only (admin), each message judged as the ingest judges it, no token in the hub's log, and
an open watch never holds the hub's shutdown up."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.harness.hubproc import HubProcess, hub_cli, wait_ready
from tests.hub.devices.test_broker_identities import Device, dynsec_hub

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

TOPIC = "ms/v1/s1/l1/press-01/telemetry"


def _batch(src: str, seq: int, readings: list[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "src": src, "seq": seq, "readings": readings}).encode()


async def _next(ws: ClientConnection, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            doc: dict[str, Any] = json.loads(await ws.recv())
            if doc["type"] == kind:
                return doc


async def _until_closed(ws: ClientConnection, within: float = 20) -> list[dict[str, Any]]:
    """Every message until the server closes the socket (the test fails after `within` s)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        try:
            while True:
                seen.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            return seen


async def _refused(url: str, first: str) -> tuple[int | None, str]:
    """The close code and the error words a watch socket ends with after `first`."""
    async with connect(url) as ws:
        await ws.send(first)
        errors = [m["error"] for m in await _until_closed(ws) if m["type"] == "error"]
        return ws.close_code, " ".join(errors)


async def test_watch_socket_judges_each_message_for_admins_only(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker, config, _db, port = dynsec_hub(mosquitto_factory, tmp_path)
    admin_key = hub_cli(config, "users", "api-key", "add", "ops", "--role", "admin").strip()
    viewer_key = hub_cli(config, "users", "api-key", "add", "looker", "--role", "viewer").strip()
    hub = HubProcess(config, tmp_path / "hub.log")
    device: Device | None = None
    try:
        await wait_ready(port, hub)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30,
        ) as api:
            gw = {"name": "press-gw", "site": "s1", "line": "l1", "machines": ["press-01"]}
            made = await api.post("/identities", json=gw)
            assert made.status_code == 201, made.text
            # An agent of the same line: its src on press-01 is an impersonation.
            agent = {"name": "line-pc", "kind": "agent", "site": "s1", "line": "l1"}
            assert (await api.post("/identities", json=agent)).status_code == 201

        base = f"ws://127.0.0.1:{port}/api/v1/identities"
        url = f"{base}/press-gw/watch"
        # Refused in words with a code mirroring HTTP: no or bad credentials, not an admin,
        # no such identity.
        assert (await _refused(url, '{"type": "ping"}'))[0] == 4401
        code, error = await _refused(url, json.dumps({"type": "auth", "token": "msk_x_y"}))
        assert code == 4401, error
        code, error = await _refused(url, json.dumps({"type": "auth", "token": viewer_key}))
        assert (code, error) == (4403, "needs role admin; you have viewer")
        auth = json.dumps({"type": "auth", "token": admin_key})
        code, error = await _refused(f"{base}/nobody/watch", auth)
        assert code == 4404
        assert "no broker identity 'nobody'" in error

        async with connect(url) as ws:
            await ws.send(auth)
            watching = await _next(ws, "watching")
            assert watching["name"] == "press-gw"
            assert TOPIC in watching["topics"]
            device = Device(broker.port, "press-gw", made.json()["password"])
            assert device.connected.wait(10), device.connack
            now = int(time.time() * 1000)

            good = [{"tag": "temp", "ts": now - i, "v": 20.0 + i} for i in range(5)]
            assert device.publish(TOPIC, _batch("press-gw", 1, good)) == 0
            accepted = await _next(ws, "verdict")
            assert accepted["accepted"] is True, accepted
            assert accepted["text"] == "5 readings, src press-gw, seq 1"
            assert (accepted["readings"], accepted["src"], accepted["seq"]) == (5, "press-gw", 1)
            assert accepted["stored"] == 5  # the hub committed it; the watch counted it there
            assert (accepted["kind"], accepted["reason"], accepted["field"]) == (
                "telemetry", None, None,
            )  # fmt: skip

            bad = [{"tag": "temp", "ts": now, "v": 1.0, "q": "so-so"}]
            assert device.publish(TOPIC, _batch("press-gw", 2, bad)) == 0
            refused = await _next(ws, "verdict")
            assert refused["accepted"] is False, refused
            assert (refused["reason"], refused["field"]) == ("bad_quality", "readings[0].q")
            assert refused["text"].startswith("refused (bad_quality): readings[0].q: ")
            assert refused["stored"] is None

            forged = [{"tag": "temp", "ts": now + 1, "v": 1.0}]
            assert device.publish(TOPIC, _batch("line-pc", 3, forged)) == 0
            impersonated = await _next(ws, "verdict")
            assert (impersonated["reason"], impersonated["field"]) == ("not_authorized", "src")

            status = b'{"v":1,"state":"online","ts":%d}' % now
            assert device.publish("ms/v1/s1/l1/press-01/status", status) == 0
            seen = await _next(ws, "verdict")
            assert (seen["kind"], seen["accepted"]) == ("status", True)

            # The hub stops with a watch open: the socket is closed (1012) and the hub exits
            # promptly instead of waiting for the browser to go.
            started = time.monotonic()
            hub.proc.send_signal(signal.SIGTERM)
            await _until_closed(ws)
            assert ws.close_code == 1012
            assert await asyncio.to_thread(hub.proc.wait, 20) == 0
            assert time.monotonic() - started < 20

        log = hub.log_text()
        assert "watch of press-gw opened by key:ops" in log
        for key in (admin_key, viewer_key):
            assert key.split("_", 2)[2] not in log  # the secret part of each key
    finally:
        if device is not None:
            device.close()
        hub.close()
