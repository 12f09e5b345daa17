"""Edge agent throughput, backlog drain and memory: poll → SQLite → MQTT with receipts flowing.

Starts a private Mosquitto, a receipt responder standing in for the hub (its own process, so its
CPU is not the agent's), and the agent (runtime + buffer + publisher over synthetic sources) as a
subprocess, then measures:

1. sustained: `--rate` readings/s for `--seconds`; agent CPU (share of one core), readings
   receipted/s and whether the buffer stays flat (receipts keep up);
2. drain: a backlog of `--backlog` readings written to the buffer beforehand, drained with
   receipts; readings/s from agent start to empty buffer;
3. rss: agent RSS while draining a backlog of 1,000 and of `--rss-backlog` readings.

    .venv/bin/python bench/agent_pipeline.py [--rate 20000] [--seconds 20] [--backlog 1000000]
        [--rss-backlog 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hub_stand_in import start_broker, start_responder, stop
from edge_agent.buffer import BufferDB, Reading
from edge_agent.buffer.readings import encode_body
from edge_agent.config import AgentConfig
from edge_agent.runtime import SyntheticSource, WireContract, run_agent

ROOT = Path(__file__).resolve().parents[1]
DEVICES = 10


# -- agent: the real runtime over synthetic sources ----------------------------------------------
def agent(config_file: Path, rate: float) -> None:
    config = AgentConfig.model_validate(json.loads(config_file.read_text()))
    sources = {
        d.machine: SyntheticSource(d.machine, tags=20, rate=rate / len(config.devices), tick=0.02)
        for d in config.devices
    }
    asyncio.run(run_agent(config, config_file, sources))  # type: ignore[arg-type]


def write_config(workdir: Path, port: int) -> Path:
    cfg = {
        "agent": {"id": "bench-agent", "site": "bench", "line": "l1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{port}",
            "status_interval": "1s",  # the status file is how this bench watches the agent
            "inflight": 200,
            "max_batch": 2000,
            "backlog_rate": 10_000_000,
            "receipt_timeout": "60s",
        },
        "buffer": {"path": "buffer.db", "max_bytes": "4GiB", "max_age": "30d"},
        "devices": [
            {"machine": f"m{i}", "profile": "synthetic", "modbus": {"host": "127.0.0.1"}}
            for i in range(DEVICES)
        ],
    }
    path = workdir / "agent.json"
    path.write_text(json.dumps(cfg))
    return path


def status(workdir: Path) -> dict[str, Any]:
    try:
        return json.loads((workdir / "state" / "agent-status.json").read_text())
    except (OSError, ValueError):
        return {}


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, __file__, *args], stdout=f, stderr=f)


def prefill(db_path: Path, readings: int, chunk: int = 200) -> float:
    """Write a backlog straight into the buffer (fast path: one wire-encoded body reused)."""
    contract = WireContract("bench-agent", "bench", "l1")
    t0 = time.perf_counter()
    db = BufferDB(db_path, now_ms=int(time.time() * 1000), encoder=contract.encode_batch)
    now = int(time.time() * 1000)
    # Distinct bodies per device so merges look real; reused across rows to keep the prefill fast.
    bodies = {
        f"m{d}": encode_body(
            contract.encode_batch,
            f"m{d}",
            [Reading(f"t{i % 20}", now - 3_600_000 + i, float(i)) for i in range(chunk)],
        )
        for d in range(DEVICES)
    }
    db.close()
    conn = sqlite3.connect(db_path)
    rows = readings // chunk
    batch = []
    for i in range(rows):
        dev = f"m{i % DEVICES}"
        body = bodies[dev]
        batch.append((dev, chunk, len(body), now - 3_600_000, body))
        if len(batch) == 5000:
            conn.executemany(
                "INSERT INTO chunk (device, n, nbytes, first_ts, body) VALUES (?,?,?,?,?)", batch
            )
            batch = []
    if batch:
        conn.executemany(
            "INSERT INTO chunk (device, n, nbytes, first_ts, body) VALUES (?,?,?,?,?)", batch
        )
    conn.commit()
    conn.close()
    return time.perf_counter() - t0


def sustained(tmp: Path, port: int, rate: float, seconds: float) -> dict[str, Any]:
    work = tmp / "sustained"
    work.mkdir()
    cfg = write_config(work, port)
    proc = spawn(["--role", "agent", str(cfg), str(rate)], work / "agent.log")
    ps = psutil.Process(proc.pid)
    try:
        while not status(work).get("connected"):
            time.sleep(0.2)
        time.sleep(3)  # warm-up
        s0, c0, t0 = status(work), ps.cpu_times(), time.monotonic()
        rss = []
        depth = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            rss.append(ps.memory_info().rss)
            depth.append(status(work).get("buffer", {}).get("readings", 0))
        s1, c1, t1 = status(work), ps.cpu_times(), time.monotonic()
    finally:
        stop(proc)

    def produced(s: dict[str, Any]) -> int:
        return sum(d["produced"] for d in s["devices"].values())

    wall = t1 - t0
    acked_in = (produced(s1) - s1["buffer"]["readings"]) - (produced(s0) - s0["buffer"]["readings"])
    return {
        "load_avg_during": os.getloadavg()[0],
        "target_rate": rate,
        "produced_per_s": round((produced(s1) - produced(s0)) / wall),
        "receipted_per_s": round(acked_in / wall),
        "agent_cpu_cores": round((c1.user + c1.system - c0.user - c0.system) / wall, 3),
        "buffer_depth_max": max(depth),
        "buffer_depth_end": depth[-1],
        "rss_mb_max": round(max(rss) / 2**20, 1),
    }


def drain(
    tmp: Path, port: int, backlog: int, name: str, watch_s: float | None = None
) -> dict[str, Any]:
    work = tmp / name
    work.mkdir()
    cfg = write_config(work, port)
    fill_s = prefill(work / "buffer.db", backlog)
    proc = spawn(["--role", "agent", str(cfg), "0"], work / "agent.log")
    ps = psutil.Process(proc.pid)
    # The clock starts when the agent is connected: interpreter start-up is not drain time.
    while not status(work).get("connected"):
        time.sleep(0.05)
    t0 = time.monotonic()
    rss: list[int] = []
    cpu0 = ps.cpu_times()
    done_at = None
    try:
        while True:
            time.sleep(0.25)
            rss.append(ps.memory_info().rss)
            s = status(work)
            if done_at is None and s.get("buffer", {}).get("readings", -1) == 0:
                done_at = time.monotonic()
            if watch_s is None and done_at is not None:
                break
            if watch_s is not None and time.monotonic() - t0 >= watch_s:
                break
            if time.monotonic() - t0 > 1800:
                break
        cpu1 = ps.cpu_times()
        left = status(work).get("buffer", {}).get("readings")
    finally:
        stop(proc)
    wall = (done_at or time.monotonic()) - t0
    out: dict[str, Any] = {
        "backlog": backlog,
        "prefill_s": round(fill_s, 1),
        "rss_mb_max": round(max(rss) / 2**20, 1),
        "rss_mb_after_5s": round(rss[min(len(rss) - 1, 20)] / 2**20, 1),
        "agent_cpu_cores": round(
            (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (time.monotonic() - t0), 3
        ),
    }
    if done_at is not None:
        out["drain_s"] = round(wall, 2)
        out["drain_per_s"] = round(backlog / wall)
        # What the figure would be with a core to itself: CPU time per reading, not wall time.
        cpu_s = out["agent_cpu_cores"] * (time.monotonic() - t0)
        out["agent_cpu_s_per_million"] = round(cpu_s / backlog * 1e6, 2)
        out["load_avg_during"] = os.getloadavg()[0]
    else:
        out["left_after_watch"] = left
        out["watched_s"] = watch_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", nargs="*")
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rss-backlog", type=int, default=10_000_000)
    parser.add_argument("--only", choices=["sustained", "drain", "rss"], action="append")
    args = parser.parse_args()
    if args.role:
        agent(Path(args.role[1]), float(args.role[2]))
        return
    only = set(args.only or ["sustained", "drain", "rss"])
    results: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg(),
        }
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker, port = start_broker(tmp)
        resp = start_responder(port, tmp / "responder.log")
        try:
            time.sleep(1)
            if "sustained" in only:
                key = f"sustained_{int(args.rate)}"
                results[key] = sustained(tmp, port, args.rate, args.seconds)
                print(f"{key}:", results[key], flush=True)
            if "drain" in only:
                results["drain"] = drain(tmp, port, args.backlog, "drain")
                print("drain:", results["drain"], flush=True)
            if "rss" in only:
                results["rss_small"] = drain(tmp, port, 1000, "rss_small", watch_s=20)
                print("rss small backlog:", results["rss_small"], flush=True)
                results["rss_large"] = drain(tmp, port, args.rss_backlog, "rss_large", watch_s=20)
                print("rss large backlog:", results["rss_large"], flush=True)
        finally:
            stop(resp)
            broker.terminate()
            broker.wait()
    out = ROOT / "bench" / "results" / "agent_pipeline.json"
    out.parent.mkdir(exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update(results)
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
