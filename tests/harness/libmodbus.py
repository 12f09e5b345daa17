"""libmodbus servers (C, Debian's libmodbus-dev): a Modbus implementation independent of
pymodbus, and cheap enough to run dozens of devices beside the agent on a 2-core machine.

    binary = build(COUNTING_SERVER_C, tmp)          # gcc -O1 against libmodbus
    proc, port = spawn(binary, "1000", "served.txt")
    ...
    assert stop(proc) == 0

`MAP_SERVER_C` serves the registers of a map file (the driver tests, the benchmarks);
`COUNTING_SERVER_C` answers every read with a response counter and records each response it
served (the agent's stop-under-overload test). Their usage is at the top of each source.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from ._server import REPO, ServerError

__all__ = [
    "COUNTING_SERVER_C",
    "MAP_SERVER_C",
    "LibmodbusMissingError",
    "build",
    "libmodbus_version",
    "spawn",
    "stop",
    "stop_all",
]

MAP_SERVER_C = REPO / "tests" / "edge_agent" / "drivers" / "modbus" / "libmodbus_server.c"
COUNTING_SERVER_C = Path(__file__).with_name("counting_modbus_server.c")


class LibmodbusMissingError(ServerError):
    """gcc or libmodbus-dev is not installed."""


def _flags() -> list[str]:
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libmodbus"],
        check=False,
        capture_output=True,
        text=True,
    )
    if flags.returncode != 0 or shutil.which("gcc") is None:
        raise LibmodbusMissingError("needs gcc and libmodbus-dev (apt-get install libmodbus-dev)")
    return flags.stdout.split()


def build(source: Path, workdir: Path) -> Path:
    """`source` compiled (gcc -O1) against libmodbus into `workdir`; its binary."""
    binary = workdir / source.stem
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source), *_flags()], check=True)
    return binary


def libmodbus_version() -> str:
    """The installed libmodbus' version, as pkg-config says."""
    return subprocess.run(
        ["pkg-config", "--modversion", "libmodbus"], check=False, capture_output=True, text=True
    ).stdout.strip()


def spawn(binary: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """One server (`binary ARGS`), once it listens; the process and its port."""
    proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        stop(proc)
        raise ServerError(f"{binary.name} {' '.join(args)} did not start: {line!r}")
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> int:
    """SIGTERM the server (by its pid), SIGKILL after `timeout` s; its exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def stop_all(procs: list[subprocess.Popen[str]], timeout: float = 10) -> list[int]:
    """Stop servers together (each is told at once, then waited for); their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    return [stop(proc, timeout) for proc in procs]
