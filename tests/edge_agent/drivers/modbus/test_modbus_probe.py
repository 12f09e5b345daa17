"""`edge-agent probe` against a real pymodbus TCP server, through the real config loader."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from modbus_harness import free_port, reference_registers, sim_device, tcp_server
from typer.testing import CliRunner

from edge_agent.cli import app

PROFILE = """\
profile: probe-test
vendor: Test
model: Probe meter
protocol: modbus
source: "test fixture"
defaults: {order: ABCD, poll_ms: 1000}
tags:
  - {name: voltage, table: input, address: 0, type: float32, unit: V}
  - {name: wrong_order, table: input, address: 2, type: float32, unit: A}
  - {name: missing, table: input, address: 10, type: uint16}
  - {name: temp, table: holding, address: 0, type: int16, scale: 0.1, unit: C}
"""


@pytest.fixture
def meter_port() -> Iterator[int]:
    """A pymodbus server on its own thread and loop (the CLI runs its own asyncio.run)."""
    regs = reference_registers(230.5, "float32", "ABCD")
    # 5.25 A stored word-swapped (CDAB) while the profile says ABCD: what probe is for.
    wrong = reference_registers(5.25, "float32", "CDAB")
    device = sim_device(
        1, input={0: regs[0], 1: regs[1], 2: wrong[0], 3: wrong[1]}, holding={0: 215}
    )
    ready: list[int] = []
    stop = threading.Event()

    async def serve() -> None:
        async with tcp_server([device]) as port:
            ready.append(port)
            while not stop.is_set():  # noqa: ASYNC110 -- the stop signal comes from another thread
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        while not ready and thread.is_alive():
            threading.Event().wait(0.01)
        yield ready[0]
    finally:
        stop.set()
        thread.join(timeout=10)


def _config(tmp_path: Path, port: int, unit: int = 1) -> Path:
    (tmp_path / "probe-test.yaml").write_text(PROFILE)
    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: {id: test-pc, site: plant-a, line: line-1}\n"
        'mqtt: {url: "mqtt://127.0.0.1:1883"}\n'
        "devices:\n"
        "  - machine: meter-01\n"
        "    profile: ./probe-test.yaml\n"
        f"    modbus: {{host: 127.0.0.1, port: {port}, unit: {unit}, timeout_ms: 1000}}\n"
    )
    return config


def test_probe_json_lists_every_tag(meter_port: int, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["probe", str(_config(tmp_path, meter_port)), "--device", "meter-01", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {row["tag"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"voltage", "wrong_order", "missing", "temp"}
    assert rows["voltage"] == {
        "tag": "voltage",
        "value": 230.5,
        "quality": "good",
        "raw": [0x4366, 0x8000],
    }
    assert rows["missing"] == {"tag": "missing", "value": None, "quality": "bad", "raw": None}
    assert rows["temp"]["value"] == pytest.approx(21.5)
    assert rows["temp"]["raw"] == [215]


def test_probe_table_marks_configured_order_and_flags_implausible(
    meter_port: int, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["probe", str(_config(tmp_path, meter_port)), "--device", "meter-01"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    voltage = next(i for i, line in enumerate(lines) if line.startswith("voltage "))
    assert "4366 8000" in lines[voltage]
    assert "230.5 V" in lines[voltage]
    assert "*ABCD=230.5 " in lines[voltage + 1] + " "
    wrong = next(i for i, line in enumerate(lines) if line.startswith("wrong_order "))
    orders = lines[wrong + 1]
    # The configured order gives a denormal; the word-swapped one is the plausible 5.25.
    assert "*ABCD=" in orders
    assert "!denormal" in orders.split("*ABCD=")[1].split("  ")[0]
    assert " CDAB=5.25" in orders
    assert "CDAB=5.25 !" not in orders
    missing = next(line for line in lines if line.startswith("missing "))
    assert missing.rstrip().endswith("bad")
    assert "4 tags, 3 good, 1 bad" in result.stdout


def test_probe_unknown_device_names_the_choices(meter_port: int, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["probe", str(_config(tmp_path, meter_port)), "--device", "nope"]
    )
    assert result.exit_code == 1
    assert "nope is not in the config" in result.output
    assert "meter-01" in result.output


def test_probe_unreachable_device_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["probe", str(_config(tmp_path, free_port())), "--device", "meter-01"]
    )
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "cannot open 127.0.0.1" in result.output
    # Every CLI error names the next step.
    assert "next: check that the machine is powered and on the network" in result.output
    assert "nc -vz 127.0.0.1" in result.output


def test_probe_of_a_unit_nobody_answers_for_says_what_to_check(
    meter_port: int, tmp_path: Path
) -> None:
    config = _config(tmp_path, meter_port, unit=7)
    result = CliRunner().invoke(app, ["probe", str(config), "--device", "meter-01"])
    assert result.exit_code == 1
    assert "unit 7" in result.output
    assert "next:" in result.output
    assert "`unit: 7` in the config" in result.output
