"""A Logix machine through the agent as a technician runs it: `validate`, `probe --json`, and
`run` publishing its readings to Mosquitto, against cpppo's EtherNet/IP server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

import wire
from tests.edge_agent.drivers.enip.enip_harness import enip_server

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
PROFILE = """profile: test-logix
vendor: Millstream tests
model: CompactLogix
protocol: enip
source: written for this test
defaults: {poll_ms: 100}
tags:
  - {name: speed, tag: Speed, type: real, unit: m/min}
  - {name: running, tag: Running}
  - {name: zone3, tag: "Zones[3]"}
"""


def _files(folder: Path, port: int, broker_url: str, profile: str = PROFILE) -> Path:
    (folder / "test-logix.yaml").write_text(profile)
    config = folder / "agent.yaml"
    config.write_text(
        "agent: {id: enip-pc, site: plant, line: l1}\n"
        f"mqtt: {{url: '{broker_url}', receipts: false}}\n"
        "devices:\n"
        f"  - {{machine: logix-01, profile: test-logix, enip: {{host: 127.0.0.1, port: {port}}}}}\n"
    )
    return config


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_a_logix_machine_is_validated_probed_and_published(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    # A private broker: this agent's retained statuses must not reach other tests' hubs.
    mosquitto = mosquitto_factory(persistence=False)
    with enip_server({"Speed": "REAL", "Running": "BOOL", "Zones": "DINT[8]"}) as server:
        server.set(Speed=42.5, Running=True, Zones_3=180)
        config = _files(tmp_path, server.port, mosquitto.url)
        done = _agent("validate", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 device, 3 tags, profiles test-logix" in done.stdout
        done = _agent("probe", str(config), "--device", "logix-01", "--json")
        assert done.returncode == 0, done.stderr
        rows = {r["tag"]: r for r in json.loads(done.stdout)}
        assert (rows["speed"]["value"], rows["speed"]["raw"]) == (42.5, "Speed")
        assert (rows["running"]["value"], rows["zone3"]["value"]) == (True, 180)

        topic = wire.telemetry_topic("plant", "l1", "logix-01")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="enip-test") as client:
            await client.subscribe(topic, qos=1)
            agent = await asyncio.create_subprocess_exec(
                EDGE_AGENT, "run", str(config), stderr=asyncio.subprocess.PIPE
            )
            values: dict[str, Any] = {}
            try:
                async with asyncio.timeout(30):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        now = int(time.time() * 1000)
                        batch = wire.parse_telemetry(topic, message.payload, now)
                        values.update({r.tag: r.v for r in batch.readings})
                        if {"speed", "zone3"} <= set(values):
                            break
            finally:
                agent.terminate()
                _out, err = await agent.communicate()
            assert agent.returncode == 0, err.decode()[-2000:]
            assert (values["speed"], values["zone3"]) == (42.5, 180)


def test_a_wrong_logix_tag_name_is_refused_with_the_form_to_write(tmp_path: Path) -> None:
    broken = PROFILE.replace("tag: Speed,", "tag: Main Speed,")
    config = _files(tmp_path, 44818, "mqtt://127.0.0.1:1883", broken)
    done = _agent("validate", str(config))
    assert done.returncode == 1
    assert "tags[0].tag: 'Main Speed' is not a Logix tag name" in done.stdout
    assert "Program:MainProgram.Speed" in done.stdout
