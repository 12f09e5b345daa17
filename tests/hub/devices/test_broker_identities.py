"""Broker identities made by `millstream-hub devices …` in a real Mosquitto with its dynamic
security plugin, with a hub process storing what devices publish: scoped by construction, cut off
at once, rotated."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import wire
from tests.harness import free_port
from tests.harness.hubproc import HUB, HubProcess, hub_cli, hub_env, wait_ready

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


class Device:
    """A device as a maker would write it: paho, MQTT v5, its own user name and password."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{secrets.token_hex(3)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.username_pw_set(user, password)
        self.connack: Any = None
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.dropped = threading.Event()
        self.granted: list[int] = []
        self.subacked = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        (self.refused if reason.is_failure else self.connected).set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        self.granted = [r.value for r in reasons]
        self.subacked.set()

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK's reason code (0 accepted, 0x87 not authorized)."""
        codes: list[int] = []
        done = threading.Event()

        def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
            codes.append(reason.value)
            done.set()

        self.client.on_publish = on_publish
        self.client.publish(topic, payload, qos=1)
        assert done.wait(10), "no PUBACK"
        return codes[0]

    def subscribe(self, topic: str) -> int:
        self.subacked.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subacked.wait(10), "no SUBACK"
        return self.granted[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _stored(db: Path, machine: str) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.machine = ?",
            (machine,),
        ).fetchone()
    return int(n)


def _dead(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]


def _batch(src: str, seq: int, n: int) -> bytes:
    t = int(time.time() * 1000)
    return wire.encode_telemetry(
        src, seq, [wire.Reading(tag="temp", ts=t - i, v=20.0 + i) for i in range(n)]
    )


async def _until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def dynsec_hub(mosquitto_factory: Any, tmp_path: Path) -> tuple[Any, Path, Path, int]:
    """A broker with dynamic security whose admin is the hub's user, and a migrated hub config
    (SQLite) after `devices setup`: (broker, config, database file, HTTP port)."""
    admin = secrets.token_hex(12)
    broker = mosquitto_factory(persistence=False, dynsec_admin=("hub", admin))
    (tmp_path / "hub.pw").write_text(admin)
    db, port = tmp_path / "hub.db", free_port()
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"mqtt: {{url: '{broker.url}', username: hub, password_file: {tmp_path / 'hub.pw'},"
        " client_id: hub-1, share_group: hub}\n"
        f"storage: 'sqlite:///{db}'\nhttp: {{host: 127.0.0.1, port: {port}}}\nflush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(config, "migrate")
    assert "holds the millstream-hub role" in hub_cli(config, "devices", "setup")
    return broker, config, db, port


async def watching(config: Path, name: str, count: int) -> asyncio.subprocess.Process:
    """`millstream-hub devices watch NAME --count N`, once it listens."""
    proc = await asyncio.create_subprocess_exec(
        HUB, "devices", "watch", name, "--count", str(count), "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=hub_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(30):
        assert f"watching {name}".encode() in await proc.stderr.readline()
    return proc


async def test_devices_are_scoped_cut_off_and_rotated(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker, config, db, port = dynsec_hub(mosquitto_factory, tmp_path)
    hub_cli(config, "devices", "setup")  # again: harmless
    added = json.loads(
        hub_cli(
            config, "devices", "add", "press-gw", "--site", "s1", "--line", "l1",
            "--machine", "press-01", "--json",
        )
    )  # fmt: skip
    assert added["src"] == "press-gw"
    listed = json.loads(hub_cli(config, "devices", "list", "--json"))
    assert [(d["name"], d["machines"], d["disabled"]) for d in listed] == [
        ("press-gw", ["press-01"], False)
    ]
    shown = json.loads(hub_cli(config, "devices", "show", "press-gw"))
    assert "password" not in shown  # never a password, only how it logs in
    assert shown["auth"] == "password"
    agent = json.loads(
        hub_cli(config, "agents", "add", "line3-pc", "--site", "s1", "--line", "l3", "--json")
    )
    hub = HubProcess(config, tmp_path / "hub.log")
    device = Device(broker.port, "press-gw", added["password"])
    try:
        await wait_ready(port, hub)
        # The conformance view: what the hub makes of each message the device sends.
        watcher = await watching(config, "press-gw", 2)
        assert device.connected.wait(10), device.connack
        # Its own receipts: yes. Another publisher's receipts, or commands: refused.
        assert device.subscribe(wire.receipt_topic("press-gw")) == 1
        assert device.subscribe(wire.receipt_topic("someone-else")) >= 0x80
        assert device.subscribe(wire.cmd_topic("line3-pc")) >= 0x80
        # Its own machine: stored (and receipted). Another machine: refused by the broker.
        assert device.publish("ms/v1/s1/l1/press-01/telemetry", _batch("press-gw", 1, 5)) == 0
        assert device.publish("ms/v1/s1/l1/press-02/telemetry", _batch("press-gw", 2, 5)) == 0x87
        assert device.publish(wire.receipt_topic("press-gw"), b'{"v":1}') == 0x87
        await _until(lambda: _stored(db, "press-01") == 5, 15, "own machine not stored")
        await _until(lambda: device.messages, 15, "no receipt for the device")
        assert _stored(db, "press-02") == 0
        # Its own topic, but claiming another identity's src: set aside by the hub.
        assert device.publish("ms/v1/s1/l1/press-01/telemetry", _batch("line3-pc", 9, 3)) == 0
        await _until(lambda: _dead(db) == ["not_authorized"], 15, "forged src not refused")
        assert _stored(db, "press-01") == 5
        async with asyncio.timeout(30):
            seen, _ = await watcher.communicate()
        accepted, refused = seen.decode().splitlines()
        assert accepted.endswith("accepted — 5 readings, src press-gw, seq 1; stored"), accepted
        assert "REFUSED — refused (not_authorized): src: 'line3-pc' may not publish" in refused

        # Disabled: disconnected at once, and refused when it tries again.
        started = time.monotonic()
        hub_cli(config, "devices", "disable", "press-gw")
        await _until(device.dropped.is_set, 2.0 + (time.monotonic() - started), "not cut off")
        device.close()
        again = Device(broker.port, "press-gw", added["password"])
        assert again.refused.wait(10), again.connack
        again.close()
        hub_cli(config, "devices", "enable", "press-gw")
        back = Device(broker.port, "press-gw", added["password"])
        assert back.connected.wait(10), back.connack
        back.close()

        # Rotated: the old password no longer works, the new one does.
        new = json.loads(hub_cli(config, "devices", "rotate", "press-gw", "--json"))["password"]
        assert new != added["password"]
        old = Device(broker.port, "press-gw", added["password"])
        assert old.refused.wait(10), old.connack
        old.close()
        fresh = Device(broker.port, "press-gw", new)
        assert fresh.connected.wait(10), fresh.connack
        assert fresh.publish("ms/v1/s1/l1/press-01/telemetry", _batch("press-gw", 3, 2)) == 0
        await _until(lambda: _stored(db, "press-01") == 7, 15, "not stored after rotation")
        fresh.close()

        # An agent: its line's machines, its own status, results and commands.
        pc = Device(broker.port, "line3-pc", agent["password"])
        assert pc.connected.wait(10), pc.connack
        assert pc.subscribe(wire.cmd_topic("line3-pc")) == 1
        assert pc.subscribe(wire.cmd_topic("other-pc")) >= 0x80
        assert pc.publish("ms/v1/s1/l3/oven-02/telemetry", _batch("line3-pc", 1, 1)) == 0
        assert pc.publish("ms/v1/s1/l1/press-01/telemetry", _batch("line3-pc", 2, 1)) == 0x87
        assert pc.publish(wire.agent_status_topic("other-pc"), b"{}") == 0x87
        pc.close()

        # The same over the API (admin).
        key = hub_cli(config, "users", "api-key", "add", "ops", "--role", "admin").strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as api:
            oven = {"name": "oven-gw", "site": "s1", "line": "l2", "machines": ["oven-01"]}
            made = await api.post("/identities", json=oven)
            assert made.status_code == 201, made.text
            assert (await api.post("/identities", json=oven)).status_code == 409
            bad = await api.post("/identities", json={**oven, "name": "no spaces"})
            assert bad.status_code == 422
            gw = Device(broker.port, "oven-gw", made.json()["password"])
            assert gw.connected.wait(10), gw.connack
            assert gw.publish("ms/v1/s1/l2/oven-01/telemetry", _batch("oven-gw", 1, 1)) == 0
            shown = (await api.get("/identities/oven-gw")).json()
            assert (shown["machines"], shown["disabled"]) == (["oven-01"], False)
            off = await api.post("/identities/oven-gw/disable")
            assert off.json()["disabled"] is True
            await _until(gw.dropped.is_set, 2.0, "not cut off through the API")
            gw.close()
            assert (await api.delete("/identities/oven-gw")).status_code == 204
            assert (await api.get("/identities/oven-gw")).status_code == 404
            # One that logs in with a client certificate: no password exists to hand out.
            cert = {**oven, "name": "oven-cert", "auth": "certificate"}
            made = await api.post("/identities", json=cert)
            assert made.status_code == 201, made.text
            assert made.json()["password"] is None
            assert (await api.get("/identities/oven-cert")).json()["auth"] == "certificate"
            rotated = await api.post("/identities/oven-cert/rotate")
            assert rotated.status_code == 409
            assert "make-certs.sh --client oven-cert" in rotated.json()["detail"]
            assert (await api.delete("/identities/oven-cert")).status_code == 204
            names = [i["name"] for i in (await api.get("/identities")).json()]
            assert names == ["line3-pc", "press-gw"]

        hub_cli(config, "devices", "remove", "press-gw")
        gone = Device(broker.port, "press-gw", new)
        assert gone.refused.wait(10), gone.connack
        gone.close()
        assert json.loads(hub_cli(config, "devices", "list", "--json")) == []
        assert [a["name"] for a in json.loads(hub_cli(config, "agents", "list", "--json"))] == [
            "line3-pc"
        ]
    finally:
        device.close()
        hub.close()


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "devices"


async def test_the_worked_examples_pass_the_conformance_check(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    """docs/wire.md "Connect a device in 10 minutes": both examples, as a maker would run them."""
    broker, config, _db, port = dynsec_hub(mosquitto_factory, tmp_path)
    binary = tmp_path / "publish"
    cc = await asyncio.create_subprocess_shell(
        f"cc -o {binary} {EXAMPLES / 'publish_libmosquitto.c'}"
        " $(pkg-config --cflags --libs libmosquitto)",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await cc.communicate()
    assert cc.returncode == 0, f"the C example does not build (libmosquitto-dev?): {err!r}"
    hub = HubProcess(config, tmp_path / "hub.log")
    try:
        await wait_ready(port, hub)
        for name, argv in (
            ("paho-gw", [sys.executable, str(EXAMPLES / "publish_paho.py")]),
            ("c-gw", [str(binary)]),
        ):
            made = json.loads(
                hub_cli(
                    config, "devices", "add", name, "--site", "plant-a", "--line", "line-3",
                    "--machine", "press-01", "--json",
                )
            )  # fmt: skip
            watcher = await watching(config, name, 1)
            env = {
                **os.environ,
                "MQTT_PORT": str(broker.port),
                "MQTT_USERNAME": name,
                "MQTT_PASSWORD": made["password"],
                "SITE": "plant-a",
                "LINE": "line-3",
                "MACHINE": "press-01",
            }
            example = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            async with asyncio.timeout(60):
                out, err = await example.communicate()
                seen, _ = await watcher.communicate()
            assert example.returncode == 0, (name, out, err)
            assert b"stored by the hub" in out
            assert (
                seen.decode()
                .strip()
                .endswith(
                    f"accepted — 2 readings, src {name}, seq {out.split()[1].decode()[:-1]}; stored"
                )
            ), seen
    finally:
        hub.close()
