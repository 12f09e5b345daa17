"""S7 polling throughput: decoded tags/s on one core through the real S7 driver.

Starts python-snap7's S7 server in a separate process with one data block of 1,000 tags of mixed
S7 types (REAL, INT, DINT, WORD, BOOL, LREAL), then polls them from this single-threaded asyncio
process through the real driver (`S7Driver.batches()`: merged byte ranges, decode, deadband,
queue) with a 1 ms poll interval, i.e. as fast as the server answers.

Figures: `tags_per_s` (wall clock), `tags_per_cpu_s` (decoded tags per second of the client's
CPU time: what one fully available core sustains), `requests_per_poll` (how many reads one poll
of all 1,000 tags takes at the negotiated PDU size).

    .venv/bin/python bench/s7_poll.py [--tags 1000] [--seconds 10]

Prints the figures and writes bench/results/s7_poll.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.drivers.s7.address import parse_address
from edge_agent.drivers.s7.driver import S7Driver, S7Endpoint, S7Point

RESULTS = Path(__file__).with_name("results") / "s7_poll.json"
# (type, address width in bytes): a PLC data block's usual mix.
MIX = [("real", 4), ("int", 2), ("dint", 4), ("word", 2), ("bool", 1), ("real", 4), ("lreal", 8)]
LETTER = {1: "B", 2: "W", 4: "D", 8: "B"}


def bench_points(count: int, poll_ms: int) -> tuple[list[S7Point], int]:
    """`count` tags packed into DB1, and the block's size in bytes."""
    points: list[S7Point] = []
    offset = 0
    for i in range(count):
        type_, size = MIX[i % len(MIX)]
        bit = f"DB1.DBX{offset}.{i % 8}"
        address = bit if type_ == "bool" else f"DB1.DB{LETTER[size]}{offset}"
        point = S7Point(f"t{i}", parse_address(address), type_, poll_ms=poll_ms)  # type: ignore[arg-type]
        points.append(point)
        offset += size
    return points, offset


def serve(size: int) -> None:
    """Server process: the S7 server on 127.0.0.1 with DB1 of `size` bytes; prints its port."""
    from snap7.server import Server  # noqa: PLC0415 -- only the server process needs it
    from snap7.type import SrvArea  # noqa: PLC0415

    data = bytearray(size)
    for at in range(0, size - 4, 4):
        struct.pack_into(">f", data, at, at / 4 + 0.5)
    server = Server(log=False)
    server.register_area(SrvArea.DB, 1, data)
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server.start_to("127.0.0.1", port)
    print("PORT", port, flush=True)
    sys.stdin.read()  # until the parent closes
    server.stop()


async def poll(port: int, count: int, seconds: float) -> dict[str, Any]:
    """Poll through the driver for `seconds`; count decoded tags."""
    points, _size = bench_points(count, poll_ms=1)
    driver = S7Driver("bench", S7Endpoint("127.0.0.1", port, timeout_ms=2000), points)
    await driver.connect()
    counted = {"tags": 0}
    measuring = False

    async def consume() -> None:
        async for batch in driver.batches():
            if measuring:
                counted["tags"] += len(batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(1.0)  # warm-up
    proc = psutil.Process()
    polls_before, requests_before = driver.counters["polls"], driver.counters["requests"]
    cpu_before = proc.cpu_times()
    start = time.perf_counter()
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - start
    cpu_after = proc.cpu_times()
    polls = driver.counters["polls"] - polls_before
    requests = driver.counters["requests"] - requests_before
    await driver.close()
    await task
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "tags": counted["tags"],
        "elapsed_s": round(elapsed, 3),
        "tags_per_s": round(counted["tags"] / elapsed),
        "tags_per_cpu_s": round(counted["tags"] / cpu_s) if cpu_s else None,
        "polls_per_s": round(polls / elapsed, 1),
        "requests_per_poll": round(requests / polls, 2) if polls else None,
        "pdu_bytes": driver.pdu_length,
        "client_cpu_percent": round(100 * cpu_s / elapsed, 1),
        "client_rss_mb": round(proc.memory_info().rss / 2**20, 1),
    }


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("snap7").setLevel(logging.CRITICAL)
    if args.serve:
        serve(args.serve)
        return
    _points, size = bench_points(args.tags, 1000)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size + 8)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        port = int(line[1])
        figures = asyncio.run(poll(port, args.tags, args.seconds))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    result = {
        "benchmark": "s7_poll",
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
            "server": "python-snap7 Server, separate process",
        },
        "figures": figures,
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
