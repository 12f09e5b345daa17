"""An S7 machine through the agent as a technician runs it: `validate`, `probe --json`, and
`run` publishing its readings to Mosquitto, against python-snap7's S7 server."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

import wire
from tests.edge_agent.drivers.s7.s7_harness import s7_server

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
PROFILE = """profile: test-plc
vendor: Millstream tests
model: S7-1500
protocol: s7
source: written for this test
defaults: {poll_ms: 100}
tags:
  - {name: speed, address: DB10.DBD0, type: real, unit: m/min}
  - {name: running, address: DB10.DBX4.0, type: bool}
  - {name: recipe, address: DB10.DBB6, type: string, length: 10}
"""


def _files(folder: Path, port: int, broker_url: str, profile: str = PROFILE) -> Path:
    (folder / "test-plc.yaml").write_text(profile)
    config = folder / "agent.yaml"
    config.write_text(
        "agent: {id: s7-pc, site: plant, line: l1}\n"
        f"mqtt: {{url: '{broker_url}', receipts: false}}\n"
        "devices:\n"
        f"  - {{machine: plc-01, profile: test-plc, s7: {{host: 127.0.0.1, port: {port}}}}}\n"
    )
    return config


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def _db() -> bytearray:
    data = bytearray(32)
    struct.pack_into(">f", data, 0, 42.5)
    data[4] = 1
    data[6:11] = bytes([10, 3]) + b"ABC"
    return data


async def test_an_s7_machine_is_validated_probed_and_published(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    # A private broker: this agent's retained statuses must not reach other tests' hubs.
    mosquitto = mosquitto_factory(persistence=False)
    with s7_server({10: _db()}) as (_server, port):
        config = _files(tmp_path, port, mosquitto.url)
        done = _agent("validate", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 device, 3 tags, profiles test-plc" in done.stdout
        done = _agent("probe", str(config), "--device", "plc-01", "--json")
        assert done.returncode == 0, done.stderr
        rows = {r["tag"]: r for r in json.loads(done.stdout)}
        assert (rows["speed"]["value"], rows["speed"]["raw"]) == (42.5, "42 2A 00 00")
        assert (rows["running"]["value"], rows["recipe"]["value"]) == (True, "ABC")

        topic = wire.telemetry_topic("plant", "l1", "plc-01")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="s7-test") as client:
            await client.subscribe(topic, qos=1)
            agent = await asyncio.create_subprocess_exec(
                EDGE_AGENT, "run", str(config), stderr=asyncio.subprocess.PIPE
            )
            try:
                async with asyncio.timeout(30):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        now = int(time.time() * 1000)
                        batch = wire.parse_telemetry(topic, message.payload, now)
                        values = {r.tag: r.v for r in batch.readings}
                        if "speed" in values:
                            break
            finally:
                agent.terminate()
                _out, err = await agent.communicate()
            assert agent.returncode == 0, err.decode()[-2000:]
            assert values["speed"] == 42.5


def test_a_wrong_s7_address_is_refused_with_the_form_to_write(tmp_path: Path) -> None:
    broken = PROFILE.replace("DB10.DBD0, type: real", "DB10.DBW0, type: real")
    config = _files(tmp_path, 102, "mqtt://127.0.0.1:1883", broken)
    done = _agent("validate", str(config))
    assert done.returncode == 1
    assert (
        "tags[0].address: DB10.DBW0 is a word (2 bytes), but real is a double word" in done.stdout
    )
    assert "hint: write DB10.DBD0" in done.stdout
