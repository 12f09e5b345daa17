"""Hub ingest throughput and latency: Mosquitto → hub → PostgreSQL. Prints and records figures.

Starts a private Mosquitto and PostgreSQL (tests/harness), migrates, runs `millstream-hub serve`
as a subprocess, then publishes pre-generated batches of 1,000 readings (QoS 1) from this process:

1. saturation: `--batches` batches as fast as the broker accepts them; sustained readings/s is
   readings ÷ (first publish → last receipt);
2. paced: `--rate` readings/s for `--seconds`; publish→commit latency p50/p99, measured as
   publish → receipt. Every batch has its own src, so the 200 ms-per-src receipt throttle never
   applies and the figure is an upper bound of publish→commit (+ ≤ 50 ms receipt tick + one hop).

Hub CPU (share of one core) and peak RSS are sampled with psutil. PostgreSQL runs with its
durability defaults (fsync, synchronous_commit, full_page_writes on), as production does;
`--no-durable` runs it with fsync=off (the test harness's setting) for the hub's own ceiling.
Where the time goes is recorded per phase: hub and PostgreSQL CPU, WAL bytes per reading and
WAL fsyncs per second (pg_stat_wal).

    .venv/bin/python bench/hub_ingest.py [--batches 400] [--rate 50000] [--seconds 15]
        [--alerts --out bench/results/hub_ingest_alerts.json] [--instances 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire
from tests.harness import Mosquitto, Postgres, free_port

RESULTS = Path(__file__).parent / "results" / "hub_ingest.json"
READINGS_PER_BATCH = 1000
MACHINES = 50
TAGS = 20  # 50 machines x 20 tags = 1,000 series; one batch = one machine, 50 samples per tag
# --alerts: the feed is written and evaluated; the rule watches every series and never fires.
ALERTS = "alerts: {rules: [{name: never, kind: threshold, above: 1.0e12}]}\n"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_batches(count: int, t0: int, src_prefix: str) -> list[tuple[str, str, bytes]]:
    """(topic, src, payload) for `count` batches of 1,000 readings each, distinct timestamps."""
    out = []
    for i in range(count):
        machine = f"m{i % MACHINES}"
        base = t0 + (i // MACHINES) * 50
        readings = [
            wire.Reading(tag=f"tag{t}", ts=base + k, v=float(i + k + t), q="good")
            for t in range(TAGS)
            for k in range(READINGS_PER_BATCH // TAGS)
        ]
        src = f"{src_prefix}{i}"
        out.append(
            (
                wire.telemetry_topic("bench", "l1", machine),
                src,
                wire.encode_telemetry(src, 1, readings),
            )
        )
    return out


class Client:
    """Publisher and receipt listener: one paho client, QoS 1."""

    def __init__(self, host: str, port: int) -> None:
        self.receipts: dict[str, float] = {}
        self.lock = threading.Lock()
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        self.c.on_message = self._on_message
        self.c.connect(host, port)
        self.c.loop_start()
        self.c.subscribe("ms/v1/receipts/#", qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        at = time.perf_counter()
        src = msg.topic.rsplit("/", 1)[-1]
        with self.lock:
            self.receipts.setdefault(src, at)

    def publish(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        return self.c.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_receipts(client: Client, srcs: list[str], timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with client.lock:
            if all(s in client.receipts for s in srcs):
                return max(client.receipts[s] for s in srcs)
        time.sleep(0.01)
    with client.lock:
        missing = sum(1 for s in srcs if s not in client.receipts)
    raise RuntimeError(f"{missing} of {len(srcs)} batches never receipted")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.rss_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                rss = self.proc.memory_info().rss
                for child in self.proc.children(recursive=True):
                    rss = max(rss, child.memory_info().rss)
                self.rss_peak = max(self.rss_peak, rss)
            except psutil.Error:
                return
            time.sleep(0.1)


class Processes:
    """The hub instances, counted as one (--instances)."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs


def hub_cpu_seconds(proc: psutil.Process | Processes) -> float:
    """User + system CPU seconds of a process (or the hub instances) and their children."""
    if isinstance(proc, Processes):
        return sum(hub_cpu_seconds(p) for p in proc.procs)
    t = proc.cpu_times()
    total = t.user + t.system
    for child in proc.children(recursive=True):
        ct = child.cpu_times()
        total += ct.user + ct.system
    return total


def wal_stats(dsn: str) -> tuple[int, int]:
    """(WAL bytes written, WAL fsyncs) so far (pg_stat_wal, PostgreSQL 14+)."""

    async def read() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT wal_bytes, wal_sync FROM pg_stat_wal")
            assert row is not None
            return int(row[0]), int(row[1])
        finally:
            await conn.close()

    return asyncio.run(read())


def wal_delta(
    before: tuple[int, int], after: tuple[int, int], readings: int, seconds: float
) -> dict[str, float]:
    """Where the disk's time goes in a phase: WAL per reading, fsyncs per second."""
    return {
        "wal_bytes_per_reading": round((after[0] - before[0]) / max(1, readings), 1),
        "wal_fsyncs_per_s": round((after[1] - before[1]) / max(seconds, 1e-9), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--rate", type=int, default=50_000, help="paced phase, readings/s")
    ap.add_argument("--seconds", type=float, default=15.0, help="paced phase duration")
    ap.add_argument("--flush-ms", type=int, default=50)
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    ap.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--instances", type=int, default=1, help="hub processes sharing the load")
    ap.add_argument(
        "--alerts",
        action="store_true",
        help="with an alerts: section (every ingest transaction writes the alert feed and the"
        " hub runs the evaluator; one threshold rule that never fires)",
    )
    args = ap.parse_args()

    broker, pg = Mosquitto(), Postgres(durable=args.durable)
    broker.start()
    pg.start()
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    hubs: list[subprocess.Popen[bytes]] = []
    client: Client | None = None
    try:
        dsn = pg.create_database("bench")
        # --instances N: N hub processes on the one shared subscription (`$share/hub/…`).
        ports = [free_port() for _ in range(args.instances)]
        configs = []
        for i, port in enumerate(ports):
            config = workdir / f"hub{i}.yaml"
            config.write_text(
                f"mqtt: {{url: '{broker.url}', client_id: bench-hub-{i}}}\n"
                f"storage: '{dsn}'\n"
                f"http: {{host: 127.0.0.1, port: {port}}}\n"
                f"flush_ms: {args.flush_ms}\n" + (ALERTS if args.alerts else "")
            )
            configs.append(config)
        exe = [str(Path(sys.executable).with_name("millstream-hub"))]
        subprocess.run([*exe, "migrate", "--config", str(configs[0])], check=True)
        env = dict(os.environ)
        # The API's tokens need a signing secret; the benchmark's is throwaway.
        env.setdefault("MILLSTREAM_JWT_SECRET", "bench-" + os.urandom(24).hex())
        for i, config in enumerate(configs):
            log = (workdir / f"hub{i}.log").open("wb")
            hubs.append(
                subprocess.Popen([*exe, "serve", "--config", str(config)], stderr=log, env=env)
            )
        for port in ports:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("hub never became ready")
        proc = Processes([psutil.Process(h.pid) for h in hubs])
        pg_proc = psutil.Process(pg.pid)
        sampler = Sampler(hubs[0].pid)
        sampler.start()
        client = Client(broker.host, broker.port)
        time.sleep(0.5)

        # Warm-up: series ids and partitions exist before measuring.
        warm = make_batches(MACHINES, now_ms() - 3_600_000, "warm")
        for topic, _, payload in warm:
            client.publish(topic, payload)
        wait_receipts(client, [s for _, s, _ in warm], 60)

        # 1. saturation
        batches = make_batches(args.batches, now_ms() - 1_800_000, "sat")
        wal0 = wal_stats(dsn)
        cpu0, pg0 = hub_cpu_seconds(proc), hub_cpu_seconds(pg_proc)
        start = time.perf_counter()
        for topic, _, payload in batches:
            client.publish(topic, payload)
        last = wait_receipts(client, [s for _, s, _ in batches], 300)
        sat_seconds = last - start
        sat_cpu = (hub_cpu_seconds(proc) - cpu0) / sat_seconds
        sat_pg_cpu = (hub_cpu_seconds(pg_proc) - pg0) / sat_seconds
        sat_rate = args.batches * READINGS_PER_BATCH / sat_seconds
        sat_wal = wal_delta(wal0, wal_stats(dsn), args.batches * READINGS_PER_BATCH, sat_seconds)

        # 2. paced
        per_s = args.rate / READINGS_PER_BATCH
        count = int(per_s * args.seconds)
        paced = make_batches(count, now_ms() - 900_000, "paced")
        sent: dict[str, float] = {}
        wal0 = wal_stats(dsn)
        cpu0, pg0 = hub_cpu_seconds(proc), hub_cpu_seconds(pg_proc)
        start = time.perf_counter()
        for i, (topic, src, payload) in enumerate(paced):
            due = start + i / per_s
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent[src] = time.perf_counter()
            client.publish(topic, payload)
        last = wait_receipts(client, list(sent), 120)
        paced_seconds = last - start
        paced_cpu = (hub_cpu_seconds(proc) - cpu0) / paced_seconds
        paced_pg_cpu = (hub_cpu_seconds(pg_proc) - pg0) / paced_seconds
        paced_wal = wal_delta(wal0, wal_stats(dsn), count * READINGS_PER_BATCH, paced_seconds)
        lat = sorted((client.receipts[s] - t) * 1000 for s, t in sent.items())
        sampler.stop.set()

        async def stored() -> tuple[int, int]:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("CHECKPOINT")
                rows = int(await conn.fetchval("SELECT count(*) FROM readings"))
                size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
                return rows, size
            finally:
                await conn.close()

        rows, db_bytes = asyncio.run(stored())
        hub_stats: dict[str, float] = {}
        for port in ports:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            for line in metrics.splitlines():
                for name in (
                    "millstream_commit_seconds_sum",
                    "millstream_commit_seconds_count",
                    "millstream_commit_messages_sum",
                    "millstream_commit_messages_count",
                ):
                    if line.startswith(name + " "):
                        hub_stats[name] = hub_stats.get(name, 0.0) + float(line.split()[1])
        expected = (MACHINES + args.batches + count) * READINGS_PER_BATCH
        result = {
            "benchmark": "hub_ingest",
            "readings_per_batch": READINGS_PER_BATCH,
            "flush_ms": args.flush_ms,
            "alerts": args.alerts,
            "hub_instances": args.instances,
            "saturation": {
                "batches": args.batches,
                "seconds": round(sat_seconds, 2),
                "readings_per_s": round(sat_rate),
                "hub_cpu_cores": round(sat_cpu, 2),
                "postgresql_cpu_cores": round(sat_pg_cpu, 2),
                # Throughput per CPU-second the hub (with its parse workers) and PostgreSQL got:
                # the load-independent cost figure when the machine is shared.
                "readings_per_cpu_second_hub_and_postgresql": round(
                    sat_rate / max(sat_cpu + sat_pg_cpu, 1e-9)
                ),
                **sat_wal,
            },
            "paced": {
                "target_readings_per_s": args.rate,
                "batches": count,
                "achieved_readings_per_s": round(count * READINGS_PER_BATCH / paced_seconds),
                "publish_to_receipt_ms_p50": round(statistics.median(lat), 1),
                "publish_to_receipt_ms_p99": round(lat[int(len(lat) * 0.99) - 1], 1),
                "publish_to_receipt_ms_max": round(lat[-1], 1),
                "hub_cpu_cores": round(paced_cpu, 2),
                "postgresql_cpu_cores": round(paced_pg_cpu, 2),
                **paced_wal,
            },
            "hub_rss_peak_mib": round(sampler.rss_peak / 2**20, 1),
            "commits": int(hub_stats.get("millstream_commit_seconds_count", 0)),
            "mean_commit_ms": round(
                1000
                * hub_stats.get("millstream_commit_seconds_sum", 0)
                / max(1, hub_stats.get("millstream_commit_seconds_count", 1)),
                1,
            ),
            "mean_messages_per_commit": round(
                hub_stats.get("millstream_commit_messages_sum", 0)
                / max(1, hub_stats.get("millstream_commit_messages_count", 1)),
                1,
            ),
            "rows_stored": rows,
            # Readings with their indexes, rollups and per-minute counts, as PostgreSQL keeps them.
            "database_bytes_per_reading": round(db_bytes / max(1, rows), 1),
            "rows_expected": expected,
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "postgresql": "durability defaults: fsync, synchronous_commit, full_page_writes on"
                if args.durable
                else "fsync=off (tests/harness)",
                # Other work on the machine skews the figures; recorded so they can be judged.
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(json.dumps(result, indent=2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if client is not None:
            client.close()
        for hub in hubs:
            hub.terminate()
        for hub in hubs:
            try:
                hub.wait(20)
            except subprocess.TimeoutExpired:
                hub.kill()
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
