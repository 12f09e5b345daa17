"""`edge-agent simulate`: the help teaches, the subcommands steer a running simulator."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import load_agent_config
from edge_agent.simulators import Simulator

runner = CliRunner()
SIM_MACHINES = 4  # no OPC-UA server needed


def test_help_names_the_machines_and_the_subcommands() -> None:
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    for word in ("press-01", "cnc-01", "inject", "fault", "--modbus-port", "examples/plant.yaml"):
        assert word in result.output


def test_config_writes_a_valid_agent_config_for_n_machines(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "config", "--machines", "7", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    loaded = load_agent_config(tmp_path / "plant.yaml", env={})
    assert [d.machine for d in loaded.config.devices][-2:] == ["press-02", "conveyor-02"]


def test_inject_without_a_simulator_says_how_to_start_one() -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            "inject",
            "--machine",
            "press-01",
            "--tag",
            "oil_temp",
            "--kind",
            "drift",
            "--control-port",
            "1",
        ],
    )
    assert result.exit_code == 1
    assert "edge-agent simulate" in result.output


@pytest.mark.asyncio(loop_scope="session")
async def test_inject_fault_and_clear_reach_the_running_simulator(sim: Simulator) -> None:
    assert sim.control is not None
    port = str(sim.control.port)

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["simulate", *args, "--control-port", port])
        assert result.exit_code == 0, result.output
        return result.output

    # The CLI blocks on its socket, so it runs in a thread while the loop serves it.
    await asyncio.to_thread(
        cli, "inject", "--machine", "press-01", "--tag", "oil_temp", "--kind", "drift"
    )
    assert [(a.machine, a.tag, a.kind) for a in sim.plant.anomalies] == [
        ("press-01", "oil_temp", "drift")
    ]
    await asyncio.to_thread(cli, "fault", "--machine", "oven-01", "--kind", "slow")
    assert [(f.machine, f.kind) for f in sim.faults.faults] == [("oven-01", "slow")]
    assert "cleared 1" in await asyncio.to_thread(cli, "clear")
    assert "cleared 1" in await asyncio.to_thread(cli, "clear", "--faults")
    assert '"sim_time"' in await asyncio.to_thread(cli, "status")


def test_the_command_prints_where_machines_listen_and_stops_on_ctrl_c() -> None:
    exe = Path(sys.executable).with_name("edge-agent")
    proc = subprocess.Popen(
        [
            str(exe),
            "simulate",
            "--machines",
            "2",
            "--modbus-port",
            "0",
            "--opcua-port",
            "0",
            "--control-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("control: 127.0.0.1:"):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert any(line.split()[:3] == ["press-01", "hydraulic-press", "modbus"] for line in lines)
        assert any("conveyor-01" in line and "unit 1" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "simulator stopped" in rest
    assert "Traceback" not in rest


def test_a_port_in_use_is_named_with_the_next_step_not_a_traceback() -> None:
    exe = Path(sys.executable).with_name("edge-agent")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = ["--modbus-port", str(port), "--opcua-port", "0", "--control-port", "0"]
        done = subprocess.run(
            [str(exe), "simulate", "--machines", "1", *ports],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"press-01: 127.0.0.1:{port} is in use" in done.stderr
    assert "--modbus-port" in done.stderr  # the next step
    assert "Traceback" not in done.stderr + done.stdout


# -- Ctrl-C at any moment ----------------------------------------------------------------------
# The bound on each exit only tells a hang from a slow machine (start-up under load takes
# seconds); what is asserted is that the simulator stops, cleanly, whenever Ctrl-C comes.
_EXIT_S = 60


def _simulate(sigint: signal.Handlers = signal.SIG_DFL) -> subprocess.Popen[str]:
    """The whole plant (OPC-UA too) on free ports, started with SIGINT's disposition `sigint`.

    SIG_IGN is what a script's `edge-agent simulate &` hands it (a non-interactive shell ignores
    SIGINT in background jobs, and an ignored signal stays ignored across exec). SIG_DFL is a
    terminal's, whatever disposition this test process itself inherited.
    """
    exe = Path(sys.executable).with_name("edge-agent")
    set_and_exec = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.Handlers(int(sys.argv[1])));"
        " os.execv(sys.argv[2], sys.argv[2:])"
    )
    ports = ["--modbus-port", "0", "--opcua-port", "0", "--control-port", "0"]
    return subprocess.Popen(
        [sys.executable, "-c", set_and_exec, str(int(sigint)), str(exe), "simulate", *ports],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("control: "):
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    return "".join(lines)


def _interrupt(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, and everything the simulator printed until it exited."""
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=_EXIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out


def test_ctrl_c_stops_it_when_a_script_started_it_in_the_background() -> None:
    proc = _simulate(signal.SIG_IGN)
    _read_banner(proc)
    rest = _interrupt(proc)
    assert proc.returncode == 0, rest
    assert rest.endswith("simulator stopped\n"), rest


@pytest.mark.parametrize("after_s", [0.5, 1.5, 3.0])
def test_ctrl_c_during_start_up_stops_it(after_s: float) -> None:
    proc = _simulate()
    time.sleep(after_s)
    out = _interrupt(proc)
    if proc.returncode == -signal.SIGINT:
        # Still importing: Python's own KeyboardInterrupt ended it before anything listened.
        assert "control: " not in out, out
        return
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert out.endswith("simulator stopped\n"), out


# -- the PLC machines ---------------------------------------------------------------------------


def test_config_with_the_plc_ports_adds_their_devices(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["simulate", "config", "--s7-port", "1102", "--enip-port", "44818", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    loaded = load_agent_config(tmp_path / "plant.yaml", env={})
    devices = {d.machine: d for d in loaded.config.devices}
    assert list(devices)[-2:] == ["s7-press-01", "logix-conveyor-01"]
    assert devices["s7-press-01"].s7 is not None
    assert devices["s7-press-01"].s7.port == 1102
    assert devices["logix-conveyor-01"].enip is not None
    assert devices["logix-conveyor-01"].enip.port == 44818


def test_config_refuses_port_0_for_a_plc_it_names_the_printed_port() -> None:
    result = runner.invoke(app, ["simulate", "config", "--s7-port", "0"])
    assert result.exit_code == 2
    assert "the port the simulator printed" in result.output


def test_the_plc_machines_are_listed_and_stop_with_ctrl_c() -> None:
    exe = Path(sys.executable).with_name("edge-agent")
    ports = ["--modbus-port", "0", "--opcua-port", "0", "--control-port", "0"]
    proc = subprocess.Popen(
        [str(exe), "simulate", "--machines", "1", *ports, "--s7-port", "0", "--enip-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = _read_banner(proc)
    rest = _interrupt(proc)
    assert proc.returncode == 0, banner + rest
    assert rest.endswith("simulator stopped\n"), rest
    assert "Traceback" not in rest
    lines = {line.split()[0]: line.split() for line in banner.splitlines()[1:-1]}
    assert lines["s7-press-01"][1:3] == ["s7-press", "s7"]
    assert "rack 0 slot 1" in " ".join(lines["s7-press-01"])
    assert lines["logix-conveyor-01"][1:3] == ["logix-conveyor", "enip"]
    # Every server went with it, cpppo's process too: both ports refuse.
    for name in ("s7-press-01", "logix-conveyor-01"):
        port = int(lines[name][3].rsplit(":", 1)[1])
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, name
