"""A fleet coming back after a central outage: how fast its backlogs drain under the drain budget.

Starts a private Mosquitto (the hub's queue bounded to `--queue` batches) and PostgreSQL (its
durability defaults unless `--no-durable`), runs `millstream-hub serve`, then `--agents` agents
(tests/harness/fleet.py: the agent's real buffer and publisher, 25 per process) each with
`--minutes` of backlog of `--tags` tags at 1 Hz (a line PC's hundred by default: 60,000 readings
each, 6 M in all), all reconnecting at once. Records the drain time (every reading in
PostgreSQL), the hub's capacity as it published it, republished batches and broker drops, and
compares the drain with two references: the capacity the hub measured during the drain (the
median it published) and bench/hub_ingest.py's saturation figure (the hub without 100 agents
sharing its two cores).

    .venv/bin/python bench/drain_budget.py [--agents 100] [--minutes 10] [--tags 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

import wire
from bench.hub_ingest import hub_cpu_seconds
from tests.harness import Mosquitto, Postgres, free_port
from tests.harness.fleet import SITE

RESULTS = Path(__file__).parent / "results" / "drain_budget.json"
REPO = Path(__file__).resolve().parents[1]
PER_PROCESS = 25


def budgets(url: str, seen: list[tuple[float, wire.DrainBudget]]) -> paho.Client:
    """A subscriber that records every budget the hub publishes."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2)

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        budget = wire.parse_drain(bytes(msg.payload))
        if budget is not None:
            seen.append((time.monotonic(), budget))

    client.on_message = on_message
    client.connect(host, int(port))
    client.subscribe(wire.DRAIN_FILTER, qos=1)
    client.loop_start()
    return client


def stored(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                    " WHERE s.site = $1",
                    SITE,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def inserted(port: int) -> int:
    """Readings the hub reports committed as new (its /metrics): far cheaper to ask every 0.1 s
    than counting rows, which would load the PostgreSQL being measured."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith('millstream_ingest_readings_total{result="inserted"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def steady_rate(progress: list[tuple[float, int]], total: int) -> float:
    """Readings/s stored between a quarter and three quarters of `total`."""
    first = next(p for p in progress if p[1] >= total * 0.25)
    last = next(p for p in progress if p[1] >= total * 0.75)
    return (last[1] - first[1]) / max(1e-3, last[0] - first[0])


def fleet(broker: str, n: int, args: argparse.Namespace, folder: Path) -> subprocess.Popen[bytes]:
    with (folder / f"fleet-{n}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.harness.fleet", "--broker", broker,
             "--first", str(n * PER_PROCESS), "--agents", str(PER_PROCESS),
             "--minutes", str(args.minutes), "--tags", str(args.tags),
             "--dir", str(folder / f"fleet-{n}"),
             "--go", str(folder / "go"), "--report", str(folder / f"report-{n}.json")],
            stdout=log, stderr=log, cwd=REPO,
        )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--queue", type=int, default=5_000)
    ap.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    processes = max(1, args.agents // PER_PROCESS)
    folder = Path(tempfile.mkdtemp(prefix="drain-bench-"))
    broker = Mosquitto(persistence=False, max_queued_messages=args.queue)
    pg = Postgres(durable=args.durable)
    broker.start()
    pg.start()
    hub: subprocess.Popen[bytes] | None = None
    seen: list[tuple[float, wire.DrainBudget]] = []
    try:
        dsn = pg.create_database("bench")
        port = free_port()
        config = folder / "hub.yaml"
        config.write_text(
            f"mqtt: {{url: '{broker.url}', client_id: bench-hub}}\nstorage: '{dsn}'\n"
            f"http: {{host: 127.0.0.1, port: {port}}}\n"
        )
        exe = str(Path(sys.executable).with_name("millstream-hub"))
        subprocess.run([exe, "migrate", "--config", str(config)], check=True)
        env = {**os.environ, "MILLSTREAM_JWT_SECRET": "bench-" + os.urandom(24).hex()}
        with (folder / "hub.log").open("ab") as log:
            hub = subprocess.Popen([exe, "serve", "--config", str(config)], stderr=log, env=env)
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        watcher = budgets(broker.url, seen)
        fleets = [fleet(broker.url, n, args, folder) for n in range(processes)]
        while not all((folder / f"report-{n}.ready").exists() for n in range(processes)):
            time.sleep(0.1)
        expected = processes * PER_PROCESS * int(args.minutes * 60) * args.tags
        assert pg.pid is not None
        procs = [psutil.Process(hub.pid), psutil.Process(pg.pid)]
        cpu_before = sum(hub_cpu_seconds(p) for p in procs)
        started = time.monotonic()
        (folder / "go").touch()
        progress: list[tuple[float, int]] = []  # (seconds since go, readings stored)
        while (count := inserted(port)) < expected:
            progress.append((time.monotonic() - started, count))
            time.sleep(0.1)
        drained = time.monotonic() - started
        # What the hub and PostgreSQL got of the two cores while the agents had the rest.
        cores = (sum(hub_cpu_seconds(p) for p in procs) - cpu_before) / drained
        progress.append((drained, count))
        rows = stored(dsn)  # the ground truth: every reading in PostgreSQL, once
        if rows != expected:
            raise SystemExit(f"{rows} readings stored, {expected} sent")
        steady = steady_rate(progress, expected)
        for proc in fleets:
            proc.wait(300)
        watcher.loop_stop()
        reports: dict[str, dict[str, Any]] = {}
        for n in range(processes):
            reports.update(json.loads((folder / f"report-{n}.json").read_text()))
        during = sorted(b.capacity for t, b in seen if started <= t <= started + drained)
        capacity = during[len(during) // 2]
        ingest = json.loads((RESULTS.parent / "hub_ingest.json").read_text())["saturation"]
        result = {
            "benchmark": "drain_budget",
            "settings": {
                "agents": processes * PER_PROCESS,
                "backlog_minutes_each": args.minutes,
                "tags_each_at_1hz": args.tags,
                "readings": expected,
                "broker_queue_batches": args.queue,
                "agents_per_process": PER_PROCESS,
            },
            "drain_seconds": round(drained, 2),
            "readings_per_s": round(expected / drained),
            "hub_capacity_published_median": round(capacity),
            "hub_capacity_published_max": round(during[-1]),
            "drain_vs_capacity": round(drained / (expected / capacity), 2),
            "hub_ingest_saturated_readings_per_s": ingest["readings_per_s"],
            "drain_vs_hub_ingest": round(drained / (expected / ingest["readings_per_s"]), 2),
            # The same hub's capacity for the CPU it had here: hub_ingest's readings per
            # CPU-second of hub and PostgreSQL times the cores they used during the drain.
            "hub_and_postgresql_cores": round(cores, 2),
            "capacity_for_those_cores": round(
                cores * ingest["readings_per_cpu_second_hub_and_postgresql"]
            ),
            "drain_vs_capacity_for_those_cores": round(
                drained
                / (expected / (cores * ingest["readings_per_cpu_second_hub_and_postgresql"])),
                2,
            ),
            # What the hub committed while the drain was in full swing (from a quarter to three
            # quarters of the readings stored): its capacity with the agents on the same cores.
            "steady_readings_per_s": round(steady),
            "drain_vs_steady": round(drained / (expected / steady), 2),
            "republished_batches": sum(r["republished_batches"] for r in reports.values()),
            "broker_dropped": "dropped" in broker.log_path.read_text(errors="replace").lower(),
            "stored_timeline": [
                [round(t, 1), n] for t, n in progress[:: max(1, len(progress) // 40)]
            ],
            "budget_timeline": [
                [round(t - started, 1), round(b.capacity), b.draining, round(b.per_agent)]
                for t, b in seen
            ],
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "everything_on_one_machine": "hub, PostgreSQL, Mosquitto and the agents",
                "postgresql": "durability defaults: fsync, synchronous_commit, full_page_writes on"
                if args.durable
                else "fsync=off (tests/harness)",
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(json.dumps(result, indent=2))
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(20)
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
