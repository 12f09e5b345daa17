"""REST API read latency: `GET …/latest` and a 24 h history at max_points=1000 (target p95 ≤ 50 ms)
with 7 days of 1 Hz data for 50 series stored (30.2 million readings).

Starts a private PostgreSQL and Mosquitto (tests/harness), migrates, and generates the data
directly in PostgreSQL: one `INSERT … SELECT … generate_series` per day partition (a sine with a
daily spike per series), then the minute rollups with one GROUP BY per day and the hour rollups
folded from the minutes — the same shape the ingest writes, without pushing 30 M readings through
MQTT. Then it runs `millstream-hub serve` as a subprocess, creates a user with the CLI, logs in,
and times sequential requests from this process over HTTP (keep-alive).

    .venv/bin/python bench/api_history.py [--requests 300]
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
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hubproc import start_hub, stop_hub
from hub.storage import open_storage
from tests.harness import Mosquitto, Postgres

RESULTS = Path(__file__).parent / "results" / "api_history.json"
DAY_MS = 86_400_000
MACHINES, TAGS, DAYS = 5, 10, 7


def _partition(day: int) -> str:
    return "readings_" + time.strftime("%Y%m%d", time.gmtime(day * 86_400))


async def generate(dsn: str, t0: int) -> dict[str, float]:
    """Fill 7 days × 50 series × 1 Hz, rollups included; returns seconds per phase."""
    async with open_storage(dsn) as storage:
        await storage.migrate()
    conn = await asyncpg.connect(dsn)
    timings: dict[str, float] = {}
    try:
        await conn.execute(
            "INSERT INTO series (site, line, machine, tag)"
            " SELECT 'plant', 'l1', 'm' || m, 'tag' || t"
            f" FROM generate_series(1, {MACHINES}) m, generate_series(1, {TAGS}) t"
        )
        started = time.perf_counter()
        for d in range(DAYS + 1):
            day = t0 // DAY_MS + d
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_partition(day)} PARTITION OF readings"
                f" FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
            )
        for d in range(DAYS):
            lo = t0 + d * DAY_MS
            # A sine per series plus one spike per day at a series-specific second.
            await conn.execute(
                "INSERT INTO readings (series_id, ts, value, value_text, quality)"
                " SELECT s.id, ts,"
                "   CASE WHEN (ts / 1000) % 86400 = (s.id * 997) % 86400 THEN 1000.0"
                "        ELSE 50 + 10 * sin(ts / 600000.0 + s.id) END, NULL, 0"
                " FROM series s, generate_series($1::bigint, $2::bigint, 1000) ts",
                lo,
                lo + DAY_MS - 1000,
            )
            print(f"day {d + 1}/{DAYS} readings stored", flush=True)
        timings["readings_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for d in range(DAYS):
            lo = t0 + d * DAY_MS
            await conn.execute(
                "INSERT INTO rollup_minute"
                " SELECT series_id, ts - ts % 60000, min(value), max(value), sum(value), count(*),"
                "  max(ts), (array_agg(value ORDER BY ts DESC))[1]"
                " FROM readings WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2",
                lo,
                lo + DAY_MS,
            )
        await conn.execute(
            "INSERT INTO rollup_hour"
            " SELECT series_id, bucket - bucket % 3600000, min(min), max(max), sum(sum),"
            "  sum(count), max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1]"
            " FROM rollup_minute GROUP BY 1, 2"
        )
        await conn.execute("VACUUM ANALYZE")
        timings["rollups_s"] = time.perf_counter() - started
        timings["readings"] = float(await conn.fetchval("SELECT count(*) FROM readings"))
    finally:
        await conn.close()
    return timings


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed(client: httpx.Client, url: str, params: dict[str, Any], n: int) -> dict[str, float]:
    """Sequential requests; latency in ms (p50/p95/p99/max)."""
    for _ in range(10):  # warm the connection, caches and the plan cache
        client.get(url, params=params).raise_for_status()
    lat = []
    for _ in range(n):
        started = time.perf_counter()
        r = client.get(url, params=params)
        lat.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
    return {
        "requests": n,
        "p50_ms": round(statistics.median(lat), 2),
        "p95_ms": round(percentile(lat, 0.95), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(max(lat), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    pg, broker = Postgres(), Mosquitto()
    hub: subprocess.Popen[bytes] | None = None
    pg.start()
    broker.start()
    try:
        now = time.time_ns() // 1_000_000
        t0 = (now // DAY_MS - DAYS) * DAY_MS + (now % DAY_MS)  # 7 days ending now
        t0 -= t0 % 60_000  # minute-aligned, so each day's rollup pass owns whole buckets
        print("generating 7 days x 50 series x 1 Hz ...", flush=True)
        gen = asyncio.run(generate(pg.dsn, t0))
        print(gen, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
        # Migrations added while the data was generated (a shared working tree) apply here.
        # One client timing sequential requests: the per-user limit is not the subject here.
        bench_hub = start_hub(
            tmp,
            broker.url,
            pg.dsn,
            "api: {requests_per_minute: 1000000}\n",
            ready_path="/health/live",
        )
        hub = bench_hub.proc
        with httpx.Client(base_url=bench_hub.base, timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {bench_hub.token}"
            series = client.get("/api/v1/series", params={"machine": "m3"}).json()
            sid = series[4]["id"]
            day = {"from": now - DAY_MS, "to": now, "max_points": 1000}
            sample = client.get(f"/api/v1/series/{sid}/readings", params=day).json()
            latest = client.get("/api/v1/machines/plant/l1/m3/latest").json()
            result: dict[str, Any] = {
                "data": {
                    "series": MACHINES * TAGS,
                    "days": DAYS,
                    "readings": int(gen["readings"]),
                    "generate_readings_s": round(gen["readings_s"], 1),
                    "generate_rollups_s": round(gen["rollups_s"], 1),
                },
                "latest_machine_10_tags": timed(
                    client, "/api/v1/machines/plant/l1/m3/latest", {}, args.requests
                ),
                "history_24h_max_points_1000": timed(
                    client, f"/api/v1/series/{sid}/readings", day, args.requests
                ),
                "history_7d_max_points_1000": timed(
                    client,
                    f"/api/v1/series/{sid}/readings",
                    {"from": t0, "to": now, "max_points": 1000},
                    args.requests,
                ),
                "history_24h_answer": {
                    "resolution": sample["resolution"],
                    "bucket_ms": sample["bucket_ms"],
                    "points": len(sample["buckets"]) + len(sample["raw"]),
                    "max": max(b["max"] for b in sample["buckets"]),
                },
                "latest_tags": len(latest),
                "target": "p95 <= 50 ms",
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "postgresql": "tests/harness (fsync=off, shared_buffers=32MB)",
                    "client": "same machine, sequential, keep-alive",
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                },
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        print(json.dumps(result, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if hub is not None:
            stop_hub(hub)
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
