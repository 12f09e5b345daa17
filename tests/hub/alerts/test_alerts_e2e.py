"""Alerts end to end: a device publishing straight to MQTT crosses a threshold; a real HTTP
receiver gets the signed webhook, a real SMTP server (aiosmtpd) the mail, an MQTT subscriber the
andon message; an operator acknowledges through the API, the value comes back past the
hysteresis. `millstream-hub serve` processes on PostgreSQL and Mosquitto, one of them SIGKILLed
between the crossing and the webhook's notification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from websockets.asyncio.client import connect

import wire
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready
from tests.harness.webhook import WebhookReceiver

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Mailbox:
    """A real SMTP server on a free port; keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802 -- aiosmtpd calls it by this name
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def states(self) -> list[str]:
        return [s.split(" ")[2].rstrip(":") for s in self.subjects()]


class AndonBoard:
    """An on-site MQTT client subscribed to `ms/v1/alerts/#`."""

    def __init__(self, host: str, port: int) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"andon-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )  # fmt: skip
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe("ms/v1/alerts/#", qos=1)

    def states(self, site: str) -> list[str]:
        return [body["state"] for topic, body in self.got if topic.split("/")[3] == site]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for h in started:
        h.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def write_config(tmp: Path, mqtt_url: str, dsn: str, hook: str, smtp_port: int) -> tuple[Path, int]:
    port = free_port()
    secret = tmp / "hook.secret"
    secret.write_text("s3cret-signing-key\n")
    config = tmp / "hub.yaml"
    ids = f"client_id: hub-{uuid.uuid4().hex[:8]}, share_group: g{uuid.uuid4().hex[:8]}"
    config.write_text(
        f"""
mqtt: {{url: '{mqtt_url}', {ids}}}
storage: '{dsn}'
http: {{host: 127.0.0.1, port: {port}}}
flush_ms: 20
jwt_secret: {os.urandom(24).hex()}
smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, sender: hub@plant.example}}
alerts:
  notifiers:
    - {{name: ops-hook, kind: webhook, url: '{hook}', secret_file: '{secret}'}}
    - {{name: shift-mail, kind: email, to: [shift@plant.example]}}
    - {{name: andon, kind: mqtt}}
  rules:
    - {{name: hot-oil, kind: threshold, match: {{machine: "press-*", tag: oil_temp}},
       above: 90, for: 2s, hysteresis: 2, severity: critical,
       notify: [ops-hook, shift-mail, andon]}}
"""
    )
    return config, port


class Device:
    """An MQTT device publishing its own telemetry (wire contract v1), QoS 1."""

    def __init__(self, host: str, port: int, site: str) -> None:
        self.topic = f"ms/v1/{site}/line-1/press-7/telemetry"
        self.src = f"dev-{uuid.uuid4().hex[:8]}"
        self.seq = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.src, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.connect(host, port)
        self.client.loop_start()

    async def send(self, value: float, ts: int | None = None) -> None:
        self.seq += 1
        reading = wire.Reading(tag="oil_temp", ts=ts or time.time_ns() // 1_000_000, v=value)
        payload = wire.encode_telemetry(self.src, self.seq, [reading])
        info = self.client.publish(self.topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_threshold_alert_lifecycle_survives_a_hub_sigkill(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, receiver: WebhookReceiver, hubs: list[HubProcess]
) -> None:
    mailbox = Mailbox()
    andon = AndonBoard(mosquitto.host, mosquitto.port)
    config, port = write_config(tmp_path, mosquitto.url, pg_dsn, receiver.url, mailbox.port)
    hub_cli(config, "migrate")
    key = hub_cli(config, "users", "api-key", "add", "andon", "--role", "operator").strip()
    viewer_key = hub_cli(config, "users", "api-key", "add", "wall", "--role", "viewer").strip()
    site = f"s{uuid.uuid4().hex[:8]}"
    receiver.failing = True  # the crossing is recorded, its notification not yet delivered
    hubs.append(HubProcess(config, tmp_path / "hub1.log"))
    await wait_ready(port, hubs[0])
    device = Device(mosquitto.host, mosquitto.port, site)
    try:
        for v in (80.0, 85.0, 95.0):
            await device.send(v)
        await asyncio.sleep(1.0)
        await device.send(96.0)
        await asyncio.sleep(1.2)
        await device.send(97.0)  # above 90 for more than 2 s: active

        async def recorded() -> bool:
            rows = await _fetch(pg_dsn, "SELECT id FROM alerts WHERE site = $1", site)
            return len(rows) == 1

        await eventually(recorded)
        await eventually(_async(lambda: receiver.attempts > 0))
        # Mail and andon are delivered (and forgotten) meanwhile: the restarted hub must not
        # send them again.
        await eventually(_async(lambda: mailbox.states() == ["active"]))
        await eventually(_async(lambda: andon.states(site) == ["active"]))

        async def only_the_webhook_waits() -> bool:
            rows = await _fetch(pg_dsn, "SELECT notifier FROM alert_notifications")
            return [r[0] for r in rows] == ["ops-hook"]

        await eventually(only_the_webhook_waits)
        hubs[0].kill()  # SIGKILL between the crossing and the webhook's notification

        receiver.failing = False
        hubs.append(HubProcess(config, tmp_path / "hub2.log"))
        await wait_ready(port, hubs[1])
        await eventually(_async(lambda: receiver.states() == ["active"]), 30)
        _arrived, headers, body = receiver.got[0]
        expect = "sha256=" + hmac.new(b"s3cret-signing-key", body, hashlib.sha256).hexdigest()
        assert headers["X-Millstream-Signature"] == expect
        alert = json.loads(body)
        for field in ("id", "rule", "state", "severity", "site", "line", "machine", "tag",
                      "value", "ts"):  # fmt: skip
            assert field in alert
        assert alert["rule"] == "hot-oil"
        assert alert["severity"] == "critical"
        assert (alert["site"], alert["machine"], alert["tag"]) == (site, "press-7", "oil_temp")
        assert headers["Idempotency-Key"] == f"{alert['id']}:active"

        base = f"http://127.0.0.1:{port}/api/v1"
        # A dashboard on the live stream: alert changes are pushed as they are recorded.
        ws = await connect(f"ws://127.0.0.1:{port}/ws", proxy=None)
        await ws.send(json.dumps({"type": "auth", "token": viewer_key}))
        await ws.send(json.dumps({"type": "subscribe", "alerts": True}))
        pushed: list[dict[str, Any]] = []

        async def listen() -> None:
            async for text in ws:
                msg = json.loads(text)
                if msg["type"] == "alert" and msg["site"] == site:
                    pushed.append(msg)

        listener = asyncio.create_task(listen())
        async with httpx.AsyncClient(headers={"X-API-Key": key}) as api:
            listed = (await api.get(f"{base}/alerts", params={"state": "active"})).json()
            assert [a["id"] for a in listed if a["site"] == site] == [alert["id"]]
            refused = await api.post(
                f"{base}/alerts/{alert['id']}/ack",
                json={"comment": "x"},
                headers={"X-API-Key": viewer_key},
            )
            assert refused.status_code == 403, refused.text
            acked = await api.post(
                f"{base}/alerts/{alert['id']}/ack", json={"comment": "oil cooler checked"}
            )
            assert acked.status_code == 200, acked.text
            assert acked.json()["state"] == "acknowledged"
            assert acked.json()["acked_by"] == "key:andon"  # who: the API key's name
            again = await api.post(f"{base}/alerts/{alert['id']}/ack", json={"comment": "x"})
            assert again.status_code == 409
            await eventually(_async(lambda: receiver.states() == ["active", "acknowledged"]))
            assert receiver.bodies()[1]["comment"] == "oil cooler checked"

            await device.send(89.0)  # inside the hysteresis band: still active
            await asyncio.sleep(1.5)
            assert receiver.states() == ["active", "acknowledged"]
            await device.send(87.5)  # past 90 - 2: cleared
            await eventually(
                _async(lambda: receiver.states() == ["active", "acknowledged", "cleared"])
            )
            history = (await api.get(f"{base}/alerts", params={"site": site})).json()
            assert [(a["state"], a["cleared_value"]) for a in history] == [("cleared", 87.5)]
        lifecycle = ["active", "acknowledged", "cleared"]
        await eventually(_async(lambda: [m["state"] for m in pushed] == lifecycle[1:]))
        assert pushed[0]["by"] == "key:andon"
        assert pushed[1]["id"] == alert["id"]
        listener.cancel()
        await ws.close()
        await eventually(_async(lambda: mailbox.states() == lifecycle))
        await eventually(_async(lambda: andon.states(site) == lifecycle))
        await asyncio.sleep(2.0)  # nothing more arrives: exactly one of each, everywhere
        assert receiver.states() == lifecycle
        assert mailbox.states() == lifecycle
        assert andon.states(site) == lifecycle
        mail = mailbox.messages[0]
        assert mail["To"] == "shift@plant.example"
        assert mail["Subject"] == f"[critical] hot-oil active: {site}/line-1/press-7 oil_temp"
        topic, andon_body = andon.got[0]
        assert topic == f"ms/v1/alerts/{site}/line-1/press-7"
        assert andon_body["id"] == alert["id"]
    finally:
        device.close()
        andon.close()
        mailbox.controller.stop()


async def _fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def test_admins_manage_rules_and_operators_shelve_machines_through_the_api(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, receiver: WebhookReceiver, hubs: list[HubProcess]
) -> None:
    mailbox = Mailbox()
    config, port = write_config(tmp_path, mosquitto.url, pg_dsn, receiver.url, mailbox.port)
    hub_cli(config, "migrate")
    admin = {
        "X-API-Key": hub_cli(config, "users", "api-key", "add", "ops", "--role", "admin").strip()
    }
    operator = {"X-API-Key": hub_cli(config, "users", "api-key", "add", "op", "--role", "operator")
                .strip()}  # fmt: skip
    site = f"s{uuid.uuid4().hex[:8]}"
    hubs.append(HubProcess(config, tmp_path / "hub.log"))
    await wait_ready(port, hubs[0])
    device = Device(mosquitto.host, mosquitto.port, site)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with httpx.AsyncClient() as api:
            rule = {"kind": "threshold", "match": {"machine": "press-7", "tag": "oil_temp"},
                    "above": 50, "severity": "warning", "notify": ["ops-hook"]}  # fmt: skip
            refused = await api.put(f"{base}/alerts/rules/warm-oil", json=rule, headers=operator)
            assert refused.status_code == 403
            bad = await api.put(
                f"{base}/alerts/rules/warm-oil", json={**rule, "notify": ["pager"]}, headers=admin
            )
            assert bad.status_code == 422
            assert "no notifier named pager" in bad.json()["detail"]
            clash = await api.put(f"{base}/alerts/rules/hot-oil", json=rule, headers=admin)
            assert clash.status_code == 409
            made = await api.put(f"{base}/alerts/rules/warm-oil", json=rule, headers=admin)
            assert made.status_code == 200, made.text
            listed = (await api.get(f"{base}/alerts/rules", headers=operator)).json()
            assert {(r["rule"]["name"], r["source"]) for r in listed} == {
                ("hot-oil", "config"), ("warm-oil", "api")}  # fmt: skip

            async def fired() -> bool:
                await device.send(60.0)  # the evaluator picks the new rule up within seconds
                return "active" in receiver.states()

            await eventually(fired, 20)
            assert {b["rule"] for b in receiver.bodies()} == {"warm-oil"}
            await device.send(40.0)
            await eventually(_async(lambda: receiver.states() == ["active", "cleared"]))

            # Maintenance on press-7: crossings are recorded, nobody is told.
            shelf = await api.post(
                f"{base}/alerts/shelves",
                json={"machine": "press-*", "for": "1h", "reason": "die change"},
                headers=operator,
            )
            assert shelf.status_code == 201, shelf.text
            await asyncio.sleep(2.5)  # the evaluator reads shelves every 2 s
            await device.send(70.0)

            async def recorded() -> bool:
                got = (await api.get(f"{base}/alerts", params={"site": site},
                                     headers=operator)).json()  # fmt: skip
                return len(got) == 2

            await eventually(recorded)
            await device.send(30.0)
            await asyncio.sleep(2.0)
            assert receiver.states() == ["active", "cleared"]
            shelves = (await api.get(f"{base}/alerts/shelves", headers=operator)).json()
            assert [(s["machine"], s["reason"], s["by"]) for s in shelves] == [
                ("press-*", "die change", "key:op")]  # fmt: skip
            gone = await api.delete(f"{base}/alerts/shelves/{shelves[0]['id']}", headers=operator)
            assert gone.status_code == 204
            deleted = await api.delete(f"{base}/alerts/rules/warm-oil", headers=admin)
            assert deleted.status_code == 204
    finally:
        device.close()
        mailbox.controller.stop()
