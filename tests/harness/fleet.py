"""A fleet of lightweight agents in one process: each the agent's real buffer (SQLite, its writer
thread) and real publisher (MQTT, receipts, backlog lane, drain budget), without drivers.

Each agent's buffer is filled with `--minutes` of backlog first (`--tags` tags at 1 Hz, 10 by
default); once the file `--go` appears, every publisher connects at once — a fleet coming back
after a central outage. Each reports its buffer depth in its status every 10 s
(`--status-interval`), as a real agent does, and 0 once empty. The process ends when every
buffer is empty (or at `--timeout`) and writes a JSON report to `--report`.

    python -m tests.harness.fleet --broker mqtt://127.0.0.1:1883 --first 0 --agents 25 \
        --minutes 10 [--tags 10] --dir /tmp/fleet --go /tmp/fleet/go --report /tmp/fleet/r0.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import wire
from edge_agent.buffer import Bounds, Buffer, Reading
from edge_agent.publish import Publisher, PublisherSettings
from edge_agent.runtime.contract import WireContract

__all__ = ["SITE", "TAGS", "main"]

SITE = "fleet"
TAGS = 10


def agent_id(n: int) -> str:
    return f"pc-{n:03d}"


async def fill(buf: Buffer, machine: str, minutes: float, now_ms: int, tags: int = TAGS) -> int:
    """`minutes` of readings of `machine`'s `tags` tags at 1 Hz, ending now."""
    seconds = int(minutes * 60)
    start = now_ms - seconds * 1000
    readings = [
        Reading(f"t{t}", start + s * 1000, float(s % 100))
        for s in range(seconds)
        for t in range(tags)
    ]
    for i in range(0, len(readings), 500):
        buf.append(machine, readings[i : i + 500])
    await buf.flush()
    return len(readings)


async def run_agent(
    n: int,
    args: argparse.Namespace,
    go: asyncio.Event,
    filled_count: list[int],
    report: dict[str, object],
) -> None:
    url = urlsplit(args.broker)
    name = agent_id(n)
    contract = WireContract(name, SITE, f"l{n // 25}")
    settings = PublisherSettings(
        host=url.hostname or "127.0.0.1",
        port=url.port or 1883,
        client_id=name,
        reconnect_min=0.2,
        reconnect_max=2.0,
    )
    path = Path(args.dir) / f"{name}.db"
    async with Buffer(path, bounds=Bounds(max_age=None), encoder=contract.encode_batch) as buf:
        filled = await fill(buf, f"m{n:03d}", args.minutes, int(time.time() * 1000), args.tags)
        pub = Publisher(settings, buf, contract)
        filled_count.append(filled)
        await go.wait()
        started = time.monotonic()
        task = asyncio.create_task(pub.run(), name=f"publisher-{name}")
        left = filled
        budgets: list[float] = []
        resent: list[tuple[float, int]] = []  # (seconds since go, batches sent again since)
        said = float("-inf")
        while left and time.monotonic() - started < args.timeout:
            left = (await buf.stats()).readings
            if time.monotonic() - said >= args.status_interval:  # as often as a real agent
                said = time.monotonic()
                pub.set_status(
                    wire.encode_agent_status(
                        "online", int(time.time() * 1000), site=SITE, buffer_depth=left
                    )
                )
            if pub.stats.drain_budget is not None:
                budgets.append(pub.stats.drain_budget)
            if pub.stats.republished_batches > sum(n for _, n in resent):
                resent.append(
                    (
                        round(time.monotonic() - started, 1),
                        pub.stats.republished_batches - sum(n for _, n in resent),
                    )
                )
            await asyncio.sleep(1.0)
        pub.set_status(wire.encode_agent_status("online", int(time.time() * 1000), buffer_depth=0))
        await asyncio.sleep(0.5)
        pub.stop()
        await task
        report[name] = {
            "filled": filled,
            "left": left,
            "seconds": round(time.monotonic() - started, 2),
            "published_batches": pub.stats.published_batches,
            "republished_batches": pub.stats.republished_batches,
            "republished_when": resent,
            "acked_readings": pub.stats.acked_readings,
            "budget_min": min(budgets, default=None),
            "budget_max": max(budgets, default=None),
        }


async def amain(args: argparse.Namespace) -> None:
    go = asyncio.Event()
    report: dict[str, object] = {}
    filled: list[int] = []

    async def wait_go() -> None:
        while len(filled) < args.agents:  # noqa: ASYNC110 -- counted by the agents' tasks
            await asyncio.sleep(0.05)
        # Every buffer is full: say so, and start when every process is (the test says when).
        Path(args.report).with_suffix(".ready").touch()
        # A file is the barrier across the fleet's processes.
        while not Path(args.go).exists():  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.05)
        go.set()

    Path(args.dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 -- before anything runs
    async with asyncio.TaskGroup() as tg:
        tg.create_task(wait_go())
        for n in range(args.first, args.first + args.agents):
            tg.create_task(run_agent(n, args, go, filled, report))
    Path(args.report).write_text(json.dumps(report))  # noqa: ASYNC240 -- after everything ran


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--agents", type=int, default=25)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--tags", type=int, default=TAGS)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--go", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--status-interval", type=float, default=10.0)  # the agent's default
    asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    main()
