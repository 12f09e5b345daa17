"""Modbus TCP polling throughput: decoded points/s on one core, with CPU% and RSS.

Starts 10 pymodbus TCP servers (200 holding registers of mixed types each) in a separate
process, then polls all of them from this single-threaded asyncio process (so at most one core)
through the real driver (`ModbusDriver.batches()`: planner, bus lock, decode, deadband,
queue) with a 1 ms poll interval, i.e. as fast as the devices answer. `--pin` pins the client
to CPU 0 and the servers to CPU 1.

Two figures: `points_per_s` (wall clock; depends on what else the machine runs, the load
average is recorded) and `points_per_cpu_s` (decoded points per second of client CPU time:
what one fully available core sustains).

    .venv/bin/python bench/modbus_poll.py [--devices 10] [--seconds 10] [--pin]

Prints the figures and writes bench/results/modbus_poll.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pymodbus
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.drivers.modbus.bus import BusPool
from edge_agent.drivers.modbus.codec import encode_point, register_count
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, TcpLink
from edge_agent.drivers.modbus.points import ModbusPoint

REGISTERS = 200
RESULTS = Path(__file__).with_name("results") / "modbus_poll.json"
# A meter/PLC-like mix: mostly float32 and 16-bit words, some 32/64-bit counters, status bits.
MIX = [
    ("float32", "ABCD"),
    ("uint16", "ABCD"),
    ("float32", "CDAB"),
    ("int16", "ABCD"),
    ("uint32", "CDAB"),
    ("int32", "ABCD"),
    ("float64", "ABCD"),
    ("uint64", "DCBA"),
    ("bool", "ABCD"),
]


def device_points(poll_ms: int) -> list[ModbusPoint]:
    """The points of one bench device, packed into REGISTERS holding registers."""
    points: list[ModbusPoint] = []
    address, i = 0, 0
    while True:
        type_, order = MIX[i % len(MIX)]
        span = register_count(type_)  # type: ignore[arg-type]
        if address + span > REGISTERS:
            break
        bit = (i % 16) if type_ == "bool" else None
        points.append(
            ModbusPoint(
                f"p{i}_{type_}",
                "holding",
                address,
                type_,  # type: ignore[arg-type]
                order=order,  # type: ignore[arg-type]
                bit=bit,
                scale=0.1 if type_ == "int16" else 1.0,
                deadband=None,
                poll_ms=poll_ms,
            )
        )
        address += span
        i += 1
    return points


def device_registers() -> list[int]:
    """Register contents with plausible values for every bench point."""
    regs = [0] * REGISTERS
    for n, point in enumerate(device_points(1000)):
        value: Any = True if point.type == "bool" else (n * 7 % 1000) + 0.5
        if point.type not in ("float32", "float64", "bool"):
            value = int(value)
        if point.type == "int16":
            value = (n * 7 % 1000) / 10
        regs[point.address : point.address + register_count(point.type)] = encode_point(
            value, point
        )
    return regs


def _pin(cpu: int) -> list[int]:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


async def serve(count: int) -> None:
    """Server process: `count` pymodbus TCP servers on 127.0.0.1; prints their ports."""
    regs = device_registers()
    servers, ports = [], []
    for _ in range(count):
        device = SimDevice(id=1, simdata=[SimData(0, values=regs, datatype=DataType.REGISTERS)])
        server = ModbusTcpServer([device], address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        sock = server.transport.sockets[0]  # type: ignore[union-attr]
        ports.append(sock.getsockname()[1])
        servers.append(server)
    print("PORTS", *ports, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until parent closes


async def poll(ports: list[int], seconds: float) -> dict[str, Any]:
    """Poll every device through the driver for `seconds`; count decoded points."""
    pool = BusPool()
    drivers = [
        ModbusDriver(
            f"bench-{i}",
            ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1, timeout_ms=2000),
            device_points(poll_ms=1),
            pool=pool,
        )
        for i, port in enumerate(ports)
    ]
    for driver in drivers:
        await driver.connect()
    counted = {"points": 0, "good": 0}
    measuring = False

    async def consume(driver: ModbusDriver) -> None:
        async for batch in driver.batches():
            if measuring:
                counted["points"] += len(batch)
                counted["good"] += sum(1 for s in batch if s.quality == "good")

    tasks = [asyncio.create_task(consume(d), name=d.device) for d in drivers]
    await asyncio.sleep(1.0)  # warm-up: connections, plans, caches
    proc = psutil.Process()
    requests_before = sum(d.counters["requests"] for d in drivers)
    cpu_before = proc.cpu_times()
    start = time.perf_counter()
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - start
    cpu_after = proc.cpu_times()
    requests = sum(d.counters["requests"] for d in drivers) - requests_before
    for driver in drivers:
        await driver.close()
    await asyncio.gather(*tasks)
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "points": counted["points"],
        "good_points": counted["good"],
        "elapsed_s": round(elapsed, 3),
        "points_per_s": round(counted["points"] / elapsed),
        "requests_per_s": round(requests / elapsed),
        "points_per_cpu_s": round(counted["points"] / cpu_s) if cpu_s else None,
        "client_cpu_percent": round(100 * cpu_s / elapsed, 1),
        "client_threads": proc.num_threads(),
        "client_rss_mb": round(proc.memory_info().rss / 2**20, 1),
        "errors": sum(d.counters["errors"] for d in drivers),
    }


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pin", action="store_true", help="pin client and servers to CPUs")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Shutdown chatter ("Cancel send, because not connected!") is not a figure.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if args.serve:
        if args.pin:
            _pin(1)
        asyncio.run(serve(args.serve))
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.devices), *(["--pin"] if args.pin else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORTS"):
            raise SystemExit(f"server process failed: {line!r}")
        ports = [int(p) for p in line.split()[1:]]
        client_cpus = _pin(0) if args.pin else sorted(os.sched_getaffinity(0))
        server_proc = psutil.Process(server.pid)
        server_before = server_proc.cpu_times()
        wall_before = time.perf_counter()
        figures = asyncio.run(poll(ports, args.seconds))
        server_after = server_proc.cpu_times()
        server_wall = time.perf_counter() - wall_before
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
    server_cpu = (server_after.user - server_before.user) + (
        server_after.system - server_before.system
    )
    result = {
        "benchmark": "modbus_poll",
        "devices": args.devices,
        "registers_per_device": REGISTERS,
        "points_per_device": len(device_points(1)),
        "requests_per_poll_per_device": 2,
        **figures,
        "server_cpu_percent": round(100 * server_cpu / server_wall, 1),
        "client_cpus": client_cpus,
        "pinned": args.pin,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pymodbus": pymodbus.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "target_points_per_s": 20000,
        "stretch_points_per_s": 50000,
    }
    keys = ("points_per_s", "points_per_cpu_s", "requests_per_s", "client_cpu_percent")
    for key in (*keys, "client_rss_mb", "load_average_1m"):
        print(f"{key:>22}: {result[key]}")
    print(f"{'server_cpu_percent':>22}: {result['server_cpu_percent']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
