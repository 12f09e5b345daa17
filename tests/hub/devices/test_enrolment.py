"""An agent enrolled with a one-time token from the hub runs without anyone typing its password:
`millstream-hub agents add --enrol` → `edge-agent init --hub --token` → `edge-agent run`, against
a real Mosquitto with dynamic security, a hub process and a Modbus TCP server."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.harness import free_port
from tests.harness.hubproc import HUB, HubProcess, hub_cli, hub_env, wait_ready
from tests.hub.devices.test_broker_identities import _stored, dynsec_hub

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))

TANK_PROFILE = """
profile: tank
vendor: Millstream tests
model: a tank level
protocol: modbus
source: this test
defaults: {poll_ms: 200}
tags:
  - {name: level, table: holding, address: 0, type: uint16, unit: cm}
"""


def init(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, "init", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_an_agent_enrolled_with_a_token_runs_without_anyone_typing_its_password(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    _broker, config, db, port = dynsec_hub(mosquitto_factory, tmp_path)
    added = json.loads(
        hub_cli(config, "agents", "add", "tank-pc", "--site", "s1", "--line", "l1", "--enrol",
                "--json")
    )  # fmt: skip
    assert "password" not in added  # nobody sees one
    token = added["token"]
    assert added["command"].endswith(f"--token {token}")
    hub_url = f"http://127.0.0.1:{port}"
    plant = tmp_path / "pc"
    agent_yaml = plant / "agent.yaml"

    # Before the hub runs: the technician is told what to check, nothing is written.
    down = init(str(agent_yaml), "--hub", hub_url, "--token", token)
    assert down.returncode == 1
    assert "cannot reach the hub" in down.stderr
    assert "hint: check --hub" in down.stderr
    assert not agent_yaml.exists()

    hub = HubProcess(config, tmp_path / "hub.log")
    modbus_port = free_port()
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[150], datatype=DataType.REGISTERS)],
            [SimData(0, count=1, datatype=DataType.INVALID)],
        ),
    )
    server = ModbusTcpServer([device], address=("127.0.0.1", modbus_port))
    await server.serve_forever(background=True)
    agent: subprocess.Popen[bytes] | None = None
    try:
        await wait_ready(port, hub)
        wrong = init(str(agent_yaml), "--hub", hub_url, "--token", "mse_not-a-token")
        assert wrong.returncode == 1
        assert "unknown enrolment token" in wrong.stderr
        assert "hint:" in wrong.stderr

        done = await asyncio.to_thread(init, str(agent_yaml), "--hub", hub_url, "--token", token)
        assert done.returncode == 0, done.stderr
        assert "enrolled as tank-pc (s1/l1)" in done.stdout
        text = agent_yaml.read_text()
        assert "id: tank-pc" in text
        assert "site: s1" in text
        assert "line: l1" in text
        assert "username: tank-pc" in text
        secret = plant / "mqtt.pass"
        password = secret.read_text().strip()
        assert len(password) >= 32
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert password not in text + done.stdout + done.stderr  # shown nowhere

        again = init(str(tmp_path / "other.yaml"), "--hub", hub_url, "--token", token)
        assert again.returncode == 1
        assert "used already" in again.stderr

        # The technician adds the machine, and the agent runs with what the hub delivered.
        (plant / "tank.yaml").write_text(TANK_PROFILE)
        devices = text[text.index("devices:") :]
        agent_yaml.write_text(
            text.replace(devices, "devices:\n  - machine: tank-01\n    profile: ./tank.yaml\n"
                         f"    modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: 1}}\n")
        )  # fmt: skip
        agent = start_agent(agent_yaml, tmp_path / "agent.log")
        deadline = time.monotonic() + 60
        while _stored(db, "tank-01") < 5:
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "agent.log").read_text()
            await asyncio.sleep(0.2)
        assert password not in (tmp_path / "agent.log").read_text()
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        await server.shutdown()  # type: ignore[no-untyped-call]
        hub.close()


async def test_a_new_token_replaces_the_unused_one_and_devices_get_none(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    _broker, config, _db, _port = dynsec_hub(mosquitto_factory, tmp_path)
    first = json.loads(
        hub_cli(config, "agents", "add", "pc-2", "--site", "s1", "--line", "l1", "--enrol",
                "--json")
    )["token"]  # fmt: skip
    second = json.loads(hub_cli(config, "agents", "enrol", "pc-2", "--json"))["token"]
    assert first != second
    rows = sqlite_rows(_db, "SELECT name, used_at FROM enrolment_tokens")
    assert rows == [("pc-2", None)]  # one live token, and only its digest
    assert all(first not in str(r) and second not in str(r) for r in rows)
    hub_cli(config, "devices", "add", "gw", "--site", "s1", "--line", "l1", "--machine", "m1")
    refused = hub_cli_fails(config, "agents", "enrol", "gw")
    assert refused.returncode == 1
    assert "is a device" in refused.stderr


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([EDGE_AGENT, "run", str(config)], stdout=out, stderr=out)


def hub_cli_fails(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HUB, *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False, env=hub_env(),
    )  # fmt: skip


def sqlite_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3  # noqa: PLC0415 -- only this helper reads the file directly

    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))
