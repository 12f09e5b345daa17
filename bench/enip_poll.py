"""EtherNet/IP polling throughput: decoded tags/s on one core through the real Logix driver.

Starts cpppo's EtherNet/IP Logix simulator in a separate process with 1,000 tags (REAL, DINT,
INT, BOOL) and polls them from this process through the real driver (`EnipDriver.batches()`:
one multi-request per poll on the device's own thread, decode, deadband, queue) with a 1 ms poll
interval, i.e. as fast as the simulator answers. The simulator (Python) is usually the limit of
the wall-clock rate; `tags_per_cpu_s` (decoded tags per second of the client's CPU time) is what
one core of the agent sustains.

    .venv/bin/python bench/enip_poll.py [--tags 1000] [--seconds 30]

Prints the figures and writes bench/results/enip_poll.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.drivers.enip.driver import EnipDriver, EnipEndpoint, EnipPoint

RESULTS = Path(__file__).with_name("results") / "enip_poll.json"
MIX = [("REAL", "real"), ("DINT", "dint"), ("INT", "int"), ("BOOL", "bool")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def poll(port: int, count: int, seconds: float) -> dict[str, Any]:
    """Poll through the driver for `seconds`; count decoded tags."""
    points = [EnipPoint(f"t{i}", f"T{i}", MIX[i % len(MIX)][1], poll_ms=1) for i in range(count)]
    driver = EnipDriver("bench", EnipEndpoint("127.0.0.1", port, timeout_ms=5000), points)
    await driver.connect()
    counted = {"tags": 0, "good": 0}
    measuring = False
    first = asyncio.Event()

    async def consume() -> None:
        async for batch in driver.batches():
            first.set()
            if measuring:
                counted["tags"] += len(batch)
                counted["good"] += sum(s.quality == "good" for s in batch)

    task = asyncio.create_task(consume())
    await first.wait()  # warm-up: connection, the first poll
    proc = psutil.Process()
    polls_before = driver.counters["polls"]
    cpu_before = proc.cpu_times()
    start = time.perf_counter()
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - start
    cpu_after = proc.cpu_times()
    polls = driver.counters["polls"] - polls_before
    await driver.close()
    await task
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "tags": counted["tags"],
        "good_tags": counted["good"],
        "elapsed_s": round(elapsed, 3),
        "tags_per_s": round(counted["tags"] / elapsed),
        "tags_per_cpu_s": round(counted["tags"] / cpu_s) if cpu_s else None,
        "polls_per_s": round(polls / elapsed, 2),
        "client_cpu_percent": round(100 * cpu_s / elapsed, 1),
        "client_rss_mb": round(proc.memory_info().rss / 2**20, 1),
    }


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    logging.getLogger("pylogix").setLevel(logging.CRITICAL)
    port = _free_port()
    tags = [f"T{i}={MIX[i % len(MIX)][0]}" for i in range(args.tags)]
    server = subprocess.Popen(
        [sys.executable, "-m", "cpppo.server.enip", "--address", f"127.0.0.1:{port}", *tags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        figures = asyncio.run(poll(port, args.tags, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    result = {
        "benchmark": "enip_poll",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "settings": {
            "tags": args.tags,
            "seconds": args.seconds,
            "poll_ms": 1,
            "server": "cpppo EtherNet/IP Logix simulator, separate process",
        },
        "figures": figures,
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
