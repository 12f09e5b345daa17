"""Does `edge-agent simulate --machines 100` keep up on one core? Prints and records the figure.

The simulator runs in this process, pinned to one CPU, with a truth file. A separate load process
(pinned elsewhere when there is a second CPU) polls every Modbus machine's whole register map once
per second, as an agent would, and subscribes to every CNC variable at 100 ms. Figures: tick cost
against the 100 ms tick budget, ticks that started late, the simulator process's CPU share of its
one core, RSS, requests served and truth lines written per second.

    .venv/bin/python bench/simulator_scale.py [--machines 100] [--seconds 30] [--speed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from edge_agent.simulators import Simulator, SimulatorOptions

RESULTS = Path(__file__).parent / "results" / "simulator_scale.json"


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


async def _load(endpoints: list[dict[str, Any]], seconds: float, out: Any) -> None:
    from asyncua import Client  # noqa: PLC0415 - only the load process needs it
    from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415

    latencies: list[float] = []
    errors = 0
    clients = []
    for ep in endpoints:
        if ep["protocol"] == "modbus":
            c = AsyncModbusTcpClient(ep["host"], port=ep["port"], timeout=5, retries=0)
            await c.connect()
            clients.append((c, ep["sizes"]))

    async def poll(c: AsyncModbusTcpClient, sizes: dict[str, int]) -> None:
        nonlocal errors
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            for fn, count in (
                (c.read_input_registers, sizes["input"]),
                (c.read_holding_registers, sizes["holding"]),
                (c.read_coils, sizes["coil"]),
                (c.read_discrete_inputs, sizes["discrete"]),
            ):
                if count:
                    rr = await fn(0, count=count, device_id=1)
                    errors += rr.isError()
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(1.0)

    class Handler:
        notifications = 0

        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            Handler.notifications += 1

    opcua = [ep for ep in endpoints if ep["protocol"] == "opcua"]
    ua_client = None
    if opcua:
        ua_client = Client(opcua[0]["url"], timeout=30)
        await ua_client.connect()
        sub = await ua_client.create_subscription(100, Handler())
        nodes = []
        for ep in opcua:
            root = await ua_client.nodes.objects.get_child([f"2:{ep['machine']}"])
            for folder in await root.get_children():
                nodes.extend(await folder.get_children())
        await sub.subscribe_data_change(nodes)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(poll(c, sizes) for c, sizes in clients))
    load_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    for c, _ in clients:
        c.close()
    if ua_client is not None:
        await ua_client.disconnect()
    latencies.sort()
    out.put(
        {
            "modbus_polls": len(latencies),
            "modbus_errors": errors,
            "poll_latency_ms_p50": round(1000 * statistics.median(latencies), 2),
            "poll_latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
            "opcua_notifications": Handler.notifications,
            # Near 1.0 means the load process itself was saturated: its latencies are its own.
            "load_process_cpu_of_one_core": round(load_cpu, 3),
        }
    )


def _load_process(endpoints: list[dict[str, Any]], seconds: float, out: Any) -> None:
    _pin(1)
    asyncio.run(_load(endpoints, seconds, out))


async def run(machines: int, seconds: float, speed: float) -> dict[str, Any]:
    """Run the simulator under load for `seconds` and return the figures."""
    _pin(0)
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        truth = Path(tmp) / "truth.jsonl"
        options = SimulatorOptions(
            machines=machines,
            seed=1,
            modbus_port=0,
            opcua_port=0,
            control_port=None,
            speed=speed,
            truth=truth,
        )
        async with Simulator(options) as sim:
            ctx = mp.get_context("spawn")
            out = ctx.Queue()
            endpoints = sim.endpoints()
            for ep in endpoints:
                if ep["protocol"] == "modbus":
                    image = sim.devices[ep["machine"]].image
                    ep["sizes"] = {t: len(v) for t, v in (image.words | image.bits).items()}
            loader = ctx.Process(target=_load_process, args=(endpoints, seconds, out))
            loader.start()
            # Let the load process connect and subscribe before measuring.
            await asyncio.sleep(5)
            cpu0 = proc.cpu_times()
            wall0 = time.monotonic()
            stats0 = (sim.stats.ticks, sim.stats.busy_s, sim.stats.late_ticks, sim.stats.cpu_s)
            sim.stats.max_tick_s = 0.0
            requests0 = sum(d.requests for d in sim.devices.values())
            await asyncio.sleep(seconds - 8)
            cpu1 = proc.cpu_times()
            wall = time.monotonic() - wall0
            ticks = sim.stats.ticks - stats0[0]
            busy = sim.stats.busy_s - stats0[1]
            tick_cpu = sim.stats.cpu_s - stats0[3]
            late = sim.stats.late_ticks - stats0[2]
            requests = sum(d.requests for d in sim.devices.values()) - requests0
            max_tick = sim.stats.max_tick_s
            rss = proc.memory_info().rss
            load = await asyncio.to_thread(out.get, True, seconds + 60)
            await asyncio.to_thread(loader.join, 30)
        lines = sum(1 for _ in truth.open(encoding="utf-8"))
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "machines": machines,
        "speed": speed,
        "tick_ms": 100,
        "measured_s": round(wall, 1),
        "ticks": ticks,
        "late_ticks": late,
        "mean_tick_wall_ms": round(1000 * busy / max(ticks, 1), 3),
        "mean_tick_cpu_ms": round(1000 * tick_cpu / max(ticks, 1), 3),
        "max_tick_wall_ms": round(1000 * max_tick, 3),
        "tick_cpu_of_one_core": round(tick_cpu / wall, 4),
        "process_cpu_of_one_core": round(cpu / wall, 4),
        "rss_mib": round(rss / 2**20, 1),
        "modbus_requests_per_s": round(requests / wall, 1),
        "truth_lines_total": lines,
        "load": load,
    }


def main() -> None:
    """Parse arguments, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speed", type=float, nargs="+", default=[1.0, 10.0])
    args = parser.parse_args()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    runs = [asyncio.run(run(args.machines, args.seconds, s)) for s in args.speed]
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "benchmark": "simulator_scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cpus_visible": os.cpu_count(),
            "pinned_to_one_core": hasattr(os, "sched_setaffinity"),
            # Other processes share the CPUs: wall-clock figures (tick wall time, latencies)
            # stretch with the load average, CPU figures do not.
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
