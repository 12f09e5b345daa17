"""WebSocket fan-out: 10, 200 and 1,000 clients × 10 updates/s; MQTT publish → client socket
latency (target p99 ≤ 100 ms at 1,000 clients), hub RSS and the CPU of every process.

Three kinds of process, so each one's CPU is its own: a private PostgreSQL and Mosquitto
(tests/harness); `millstream-hub serve` (in-process fan-out, no Redis); and `--procs` Node.js
processes running the clients (bench/ws_clients/clients.js, Node's `ws`, installed into
bench/ws_clients/node_modules by `npm install` on first run). This process only publishes: one
batch per machine every 1/`--rate` s, 10 tags each, every reading carrying its publish time (ns)
as its value. A client's receive time minus that value is the MQTT publish → socket latency of
the reading (same host, same clock). Clients offer permessage-deflate, as browsers do.

Scenarios run in turn on one hub (RSS is recorded before and after each). Each scenario has a
10 s warm-up (see WARMUP_S), then `--seconds` measured; readings published in the window count.

    .venv/bin/python bench/ws_fanout.py [--clients 10,200,1000] [--seconds 12] [--procs 1]
        [--machines 10] [--rate 10] [--flush-ms 50] [--plain]

About two minutes in all with the defaults. Results: bench/results/ws_fanout.json, one entry per
client count (`clients_1000`, …), each with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire
from bench.hubproc import start_hub, stop_hub
from tests.harness import Mosquitto, Postgres

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ws_fanout.json"
CLIENTS_JS = HERE / "ws_clients" / "clients.js"
TAGS = 10
# Steady state, not the connection storm: the hub's garbage collector promotes the objects of
# 1,000 just-connected sockets (and frees the HTTP protocol objects their upgrade left in
# cycles) in one ~60 ms pass some seconds after they connect.
WARMUP_S = 10.0


def ensure_node_clients() -> None:
    if not shutil.which("node"):
        sys.exit("bench/ws_fanout.py needs Node.js (node) for its load-generating clients")
    if not (CLIENTS_JS.parent / "node_modules" / "ws").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=CLIENTS_JS.parent, check=True
        )


def percentile(sorted_values: list[float], q: float) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))], 1)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


class Publisher:
    """One MQTT batch per machine per tick, each reading's value its publish time in ns."""

    def __init__(self, broker: Mosquitto, machines: list[str]) -> None:
        self.machines = machines
        self.seq = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def run(self, seconds: float, rate: float) -> None:
        period = 1 / rate
        started = time.perf_counter()
        next_at = started
        while time.perf_counter() - started < seconds:
            for m in self.machines:
                self.seq += 1
                ts = time.time_ns()
                readings = [
                    wire.Reading(tag=f"t{k}", ts=ts // 1_000_000, v=ts, q="good")
                    for k in range(TAGS)
                ]
                self.client.publish(
                    f"ms/v1/{m}/telemetry",
                    wire.encode_telemetry("bench", self.seq, readings),
                    qos=1,
                )
            next_at += period
            time.sleep(max(0.0, next_at - time.perf_counter()))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scenario(
    args: argparse.Namespace, clients: int, url: str, hub: psutil.Process, pub: Publisher
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ws-clients-"))
    nprocs = max(1, min(args.procs, clients // 100))
    procs: list[subprocess.Popen[str]] = []
    outs = []
    for i in range(nprocs):
        n = clients // nprocs + (1 if i < clients % nprocs else 0)
        out = tmp / f"clients{i}.json"
        outs.append(out)
        procs.append(
            subprocess.Popen(
                [
                    "node",
                    str(CLIENTS_JS),
                    url,
                    str(n),
                    ",".join(pub.machines),
                    str(out),
                    "plain" if args.plain else "deflate",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith("ready"):
                raise SystemExit(f"client process failed before ready: {line!r}")
        print(f"{clients} clients connected and subscribed ({nprocs} processes)", flush=True)
        client_ps = [psutil.Process(p.pid) for p in procs]
        rss_before = hub.memory_info().rss
        load_before = os.getloadavg()
        pub.run(WARMUP_S, args.rate)
        window_from_ms = time.time() * 1000
        hub_cpu0, clients_cpu0 = cpu_seconds(tree(hub.pid)), cpu_seconds(client_ps)
        psutil.cpu_percent(None)
        t0 = time.perf_counter()
        pub.run(args.seconds, args.rate)
        elapsed = time.perf_counter() - t0
        window_to_ms = time.time() * 1000
        hub_cpu = cpu_seconds(tree(hub.pid)) - hub_cpu0
        clients_cpu = cpu_seconds(client_ps) - clients_cpu0
        system_cpu = psutil.cpu_percent(None)
        rss_after = hub.memory_info().rss
        time.sleep(1.0)  # the window's last updates land
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("stop\n")
            p.stdin.flush()
        for p in procs:
            p.wait(60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lat: list[float] = []
    totals: dict[str, int] = {}
    window_messages = 0  # client updates (t0 readings) published in the window
    for out in outs:
        doc = json.loads(out.read_text())
        window_messages += sum(1 for t in doc["ts"] if window_from_ms <= t < window_to_ms)
        lat.extend(
            v
            for t, v in zip(doc["ts"], doc["lat"], strict=True)
            if window_from_ms <= t < window_to_ms
        )
        for key in ("messages", "readings_messages", "heartbeats", "errors", "closed", "deflate"):
            totals[key] = totals.get(key, 0) + doc[key]
    shutil.rmtree(tmp, ignore_errors=True)
    lat.sort()
    expected = clients * args.rate * args.seconds
    return {
        "clients": clients,
        "machines": len(pub.machines),
        "updates_per_s_per_client": args.rate,
        "seconds_measured": round(elapsed, 1),
        "updates_received": len(lat),
        "updates_expected_approx": round(expected),
        "latency_ms_p50": percentile(lat, 0.50) if lat else None,
        "latency_ms_p95": percentile(lat, 0.95) if lat else None,
        "latency_ms_p99": percentile(lat, 0.99) if lat else None,
        "latency_ms_max": round(lat[-1], 1) if lat else None,
        "hub_rss_mib_before": round(rss_before / 2**20, 1),
        "hub_rss_mib_after": round(rss_after / 2**20, 1),
        "hub_cpu_cores": round(hub_cpu / elapsed, 2),
        "hub_cpu_us_per_update": round(hub_cpu / max(1, window_messages) * 1e6, 1),
        "clients_cpu_cores": round(clients_cpu / elapsed, 2),
        "client_processes": nprocs,
        "system_cpu_percent_of_all_cores": system_cpu,
        "client_stats": totals,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "flush_ms": args.flush_ms,
        "clients_offer_deflate": not args.plain,
        "target": "p99 <= 100 ms at 1,000 clients",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,200,1000", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=12, help="measured seconds per scenario")
    # One client process: at 1,000 clients it uses ~0.4 of a core, and a second one only adds
    # a runnable process competing with the hub for the same two cores at each burst (p99 at
    # 1,000 clients: 92-236 ms with one, 189-503 ms with two, on this machine).
    parser.add_argument("--procs", type=int, default=1, help="client processes (at most)")
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10, help="updates per machine per second")
    parser.add_argument(
        "--flush-ms", type=int, default=50, help="the hub's ingest flush_ms (its default: 50)"
    )
    parser.add_argument("--plain", action="store_true", help="clients do not offer deflate")
    args = parser.parse_args()
    ensure_node_clients()
    counts = [int(c) for c in args.clients.split(",")]
    pg, broker = Postgres(), Mosquitto()
    hub: subprocess.Popen[bytes] | None = None
    pg.start()
    broker.start()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="bench-ws-"))
        bench_hub = start_hub(tmp, broker.url, pg.dsn, f"flush_ms: {args.flush_ms}\n")
        hub = bench_hub.proc
        url = bench_hub.base.replace("http://", "ws://") + f"/ws?token={bench_hub.token}"
        proc = psutil.Process(hub.pid)
        rss_idle = proc.memory_info().rss
        pub = Publisher(broker, [f"plant/l1/m{i}" for i in range(args.machines)])
        results = {}
        for n in counts:
            result = scenario(args, n, url, proc, pub)
            result["hub_rss_mib_idle"] = round(rss_idle / 2**20, 1)
            result["machine"] = {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processes": "hub, PostgreSQL, Mosquitto, Node clients and the publisher are "
                "separate processes on one machine",
            }
            result["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print(json.dumps({k: v for k, v in result.items() if k != "machine"}), flush=True)
            results[f"clients_{n}"] = result
        pub.close()
        # One entry per client count, so a run of one scale keeps the others' figures.
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous.update(results)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
        for key, r in results.items():
            print(
                f"{key}: p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms, "
                f"hub {r['hub_cpu_cores']} cores, RSS {r['hub_rss_mib_after']} MiB, "
                f"clients {r['clients_cpu_cores']} cores, load {r['load_avg_after'][0]}"
            )
        print(f"hub log: {bench_hub.log}")
    finally:
        if hub is not None:
            stop_hub(hub)
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
