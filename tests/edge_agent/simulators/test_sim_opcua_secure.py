"""The simulator's secured OPC-UA endpoint: a technician rehearses certificate pinning and
`edge-agent opcua trust` against it with the real CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from _sim_helpers import PROFILES
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.drivers.opcua.certs import thumbprints
from edge_agent.drivers.opcua.trust import PinStore
from edge_agent.simulators import Simulator, SimulatorOptions

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def invoke(*args: str) -> tuple[int, str]:
    # The CLI runs its own event loop; a thread keeps the simulator's loop (this test's) serving.
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


def write_config(tmp_path: Path, url: str) -> Path:
    config = {
        "agent": {"id": "line3-pc", "site": "plant-a", "line": "line-3"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "state_dir": "state",
        "devices": [
            {
                "machine": "cnc-01",
                "profile": str(PROFILES / "sim-cnc-mill.yaml"),
                "opcua": {"url": url, "security": "SignAndEncrypt/Basic256Sha256"},
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_a_replaced_certificate_is_refused_until_trusted(tmp_path: Path) -> None:
    certs = tmp_path / "sim-certs"
    options = SimulatorOptions(
        machines=5, modbus_port=0, opcua_port=0, control_port=None, opcua_cert_dir=certs
    )
    async with Simulator(options) as sim:
        assert sim.opcua is not None
        config = write_config(tmp_path, sim.opcua.url)
        pins = PinStore(tmp_path / "state")
        first = thumbprints((certs / "server-cert.der").read_bytes())[0]

        # First use over SignAndEncrypt: values come back and the certificate is pinned.
        code, out = await invoke("probe", str(config), "--device", "cnc-01")
        assert code == 0, out
        assert "spindle_speed" in out
        assert pins.pinned("cnc-01") == first

        # The "PLC" is replaced: a new certificate on restart, refused by the agent.
        for f in certs.iterdir():
            f.unlink()
        await sim.opcua.restart(0.1)
        second = thumbprints((certs / "server-cert.der").read_bytes())[0]
        assert second != first
        code, out = await invoke("probe", str(config), "--device", "cnc-01")
        assert code != 0, out
        assert "server certificate changed" in out
        assert pins.pinned("cnc-01") == first

        code, out = await invoke("opcua", "trust", "--device", "cnc-01", str(config), "--yes")
        assert code == 0, out
        assert second in out
        assert pins.pinned("cnc-01") == second
        code, out = await invoke("probe", str(config), "--device", "cnc-01")
        assert code == 0, out
