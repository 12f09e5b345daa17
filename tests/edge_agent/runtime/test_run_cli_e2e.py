"""`edge-agent run` as a service runs it: simulated plant, real drivers, Mosquitto, stand-in hub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from mqtt_harness import Broker, Responder, eventually, free_port

from edge_agent.config import load_agent_config
from tests.harness.devicestate import simulated_plant_config

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))


@pytest.fixture
def plant(tmp_path: Path, broker: Broker) -> Iterator[Path]:
    """Two simulated machines (press on Modbus TCP, conveyor on Modbus TCP) and their config."""
    modbus = free_port()
    args = ["--machines", "2", "--modbus-port", str(modbus), "--opcua-port", str(free_port())]
    config = simulated_plant_config(tmp_path, modbus, broker.url, "e2e-pc")
    with (tmp_path / "sim.log").open("ab") as log:
        sim = subprocess.Popen(
            [EDGE_AGENT, "simulate", *args, "--control-port", str(free_port())],
            stdout=log,
            stderr=log,
        )
    yield config
    os.kill(sim.pid, signal.SIGKILL)
    sim.wait()


def _profile_units(config: Path) -> dict[str, dict[str, str]]:
    """Machine → tag → unit, read from the generated config and its profiles."""
    loaded = load_agent_config(config)
    return {
        d.device.machine: {t.name: t.unit for t in d.profile.tags if t.unit} for d in loaded.devices
    }


async def _cli(*args: str) -> tuple[int, str, str]:
    """Run `edge-agent ARGS` to the end: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        EDGE_AGENT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def run_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with (tmp_path / "run.log").open("w+b") as f:
        yield f


async def test_run_publishes_every_device_and_stops_cleanly(
    plant: Path, broker: Broker, run_log: IO[bytes]
) -> None:
    async with Responder(broker) as hub:
        agent = await asyncio.create_subprocess_exec(
            EDGE_AGENT,
            "run",
            str(plant),
            "--log-level",
            "info",
            stdout=run_log,
            stderr=run_log,
        )
        try:
            await hub.wait_for(lambda: len(hub.readings) == 2 and hub.total() > 50, within=60)

            async def status_connected() -> bool:
                status = await asyncio.create_subprocess_exec(
                    EDGE_AGENT, "status", str(plant), "--json", stdout=asyncio.subprocess.PIPE
                )
                out, _ = await status.communicate()
                return b'"connected": true' in out

            await eventually(status_connected, within=30)

            # A second agent on the same buffer would reuse src/seq numbers and delete the
            # first one's batches on receipt: it is refused, naming the running one.
            code, _, err = await _cli("run", str(plant))
            assert code != 0
            assert "another edge-agent is running on the buffer" in err
            assert f"(pid {agent.pid})" in err
        finally:
            agent.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await agent.wait()
        run_log.seek(0)
        assert agent.returncode == 0, run_log.read().decode()[-3000:]
        # At once after the stop (not one status interval later): not running, purge allowed.
        code, out, err = await _cli("status", str(plant), "--json")
        assert code == 0, err
        stopped = json.loads(out)
        assert stopped["running"] is False
        assert 0 <= stopped["status_age_s"] < 60
        # The text names the record as the last known state and words every line in the past,
        # so a stopped agent's last record is not read as machines online now.
        code, out, err = await _cli("status", str(plant))
        assert code == 0, err
        assert "not running; last known state, recorded" in out
        assert "was connected" in out or "was not connected" in out
        after = out.split("  devices:\n", 1)[1].splitlines()
        devices = [line for line in after if line.startswith("    ")]
        assert len(devices) == 2
        assert all(" was online " in d or " was OFFLINE " in d for d in devices), devices
        code, out, err = await _cli("buffer", "purge", str(plant), "--yes")
        assert code == 0, err
        assert "purged" in out
        assert set(hub.readings) == {"press-01", "conveyor-01"}
        # Units from the generated profiles, published retained per machine (wire `…/meta`).
        units = {
            machine: {tag: m["unit"] for tag, m in body["tags"].items() if "unit" in m}
            for machine, body in hub.metas.items()
        }
        # Every tag is listed with its heartbeat (the shipped profiles keep the 60 s default).
        assert all(
            m["max_interval_ms"] == 60_000
            for body in hub.metas.values()
            for m in body["tags"].values()
        )
        assert set(units) == {"press-01", "conveyor-01"}
        expected = _profile_units(plant)
        assert units == expected
        assert any(expected["press-01"].values())
        await hub.wait_for(
            lambda: any(s.get("state") == "offline" for s in hub.statuses), within=10
        )
