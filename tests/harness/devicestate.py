"""Waiting for a device health or a simulated plant: helpers the device-truth tests share."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.drivers.health import DeviceHealth

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))


async def seconds_until_state(health: DeviceHealth, state: str, within: float = 30.0) -> float:
    """Seconds until `health` judges its device `state` (a measurement; `within` bounds a bug)."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while health.state() != state:  # noqa: ASYNC110 -- the state is judged on read
            await asyncio.sleep(0.05)
    return time.monotonic() - started


def simulated_plant_config(
    folder: Path,
    modbus_port: int,
    mqtt_url: str,
    agent_id: str,
    *,
    machines: int = 2,
    opcua_port: int = 4840,
) -> Path:
    """`edge-agent simulate config` for `machines` machines (Modbus from `modbus_port` on, the
    fifth on OPC-UA at `opcua_port`), pointed at `mqtt_url`."""
    subprocess.run(
        [
            EDGE_AGENT,
            "simulate",
            "config",
            "--machines",
            str(machines),
            "--out",
            str(folder / "plant"),
            "--modbus-port",
            str(modbus_port),
            "--opcua-port",
            str(opcua_port),
        ],
        check=True,
        capture_output=True,
    )
    config = folder / "plant" / "plant.yaml"
    text = config.read_text().replace("mqtt://127.0.0.1:1883", mqtt_url)
    config.write_text(text.replace("id: sim-line-pc", f"id: {agent_id}"))
    return config


@contextmanager
def socat_pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: a virtual RS-485 line with two ends."""
    proc = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        ttys: list[str] = []
        while len(ttys) < 2:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("socat exited before opening its ptys")
            if found := re.search(r"PTY is (\S+)", line):
                ttys.append(found.group(1))
        yield ttys[0], ttys[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
