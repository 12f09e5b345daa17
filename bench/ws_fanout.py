"""WebSocket fan-out: 1,000 clients × 10 updates/s; MQTT publish → client socket latency
(target p99 ≤ 100 ms) and hub RSS.

Starts a private PostgreSQL and Mosquitto (tests/harness), runs `millstream-hub serve`
(in-process fan-out, no Redis) as a subprocess, opens `--clients` WebSocket connections from
this process, each subscribed to one of `--machines` machines, then publishes one batch per
machine every 1/`--rate` s (10 tags each). Every reading carries its publish time (ns) as its
value, so a client's receive time minus the value is the MQTT → socket latency of that reading
(same host, same clock). Client-side parsing shares the machine's two cores with the hub,
PostgreSQL and Mosquitto, so the figure is an upper bound.

    .venv/bin/python bench/ws_fanout.py [--clients 1000] [--machines 10] [--rate 10] [--seconds 20]
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

import httpx
import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire
from tests.harness import Mosquitto, Postgres, free_port

RESULTS = Path(__file__).parent / "results" / "ws_fanout.json"
HUB = str(Path(sys.executable).with_name("millstream-hub"))
SECRET = "bench-" + "x" * 48
PASSWORD = "bench-password"
TAGS = 10


async def client_loop(ws: ClientConnection, lat: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with asyncio.timeout(1):
                raw = await ws.recv()
        except TimeoutError:
            continue
        now = time.time_ns()
        msg = json.loads(raw)
        if msg["type"] == "readings":
            lat.extend((now - int(r["v"])) / 1e6 for r in msg["readings"] if r["tag"] == "t0")


async def run(args: argparse.Namespace, url: str, token: str, broker: Mosquitto) -> dict[str, Any]:
    machines = [f"plant/l1/m{i}" for i in range(args.machines)]
    lat: list[float] = []
    stop = asyncio.Event()
    conns = []
    for i in range(args.clients):
        ws = await connect(f"{url}?token={token}", proxy=None, compression=None, max_size=None)
        json.loads(await ws.recv())  # welcome
        await ws.send(json.dumps({"type": "subscribe", "machines": [machines[i % len(machines)]]}))
        json.loads(await ws.recv())  # subscribed
        conns.append(ws)
    print(f"{len(conns)} clients connected and subscribed", flush=True)
    tasks = [asyncio.create_task(client_loop(ws, lat, stop)) for ws in conns]

    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    seq = 0
    period = 1 / args.rate
    started = time.perf_counter()
    warmup_until = started + 3
    next_at = started
    while time.perf_counter() - started < args.seconds:
        if time.perf_counter() >= warmup_until and warmup_until:
            lat.clear()  # drop the warm-up's figures
            warmup_until = 0
        for m in machines:
            seq += 1
            ts = time.time_ns()
            readings = [
                wire.Reading(tag=f"t{k}", ts=ts // 1_000_000, v=ts, q="good") for k in range(TAGS)
            ]
            pub.publish(
                f"ms/v1/{m}/telemetry", wire.encode_telemetry("bench", seq, readings), qos=1
            )
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*tasks)
    pub.disconnect()
    pub.loop_stop()
    for ws in conns:
        await ws.close()
    expected = args.clients * args.rate * (args.seconds - 3)
    lat.sort()
    return {
        "clients": args.clients,
        "machines": args.machines,
        "updates_per_s_per_client": args.rate,
        "seconds_measured": args.seconds - 3,
        "updates_received": len(lat),
        "updates_expected_approx": expected,
        "latency_ms_p50": round(statistics.median(lat), 1),
        "latency_ms_p95": round(lat[int(len(lat) * 0.95)], 1),
        "latency_ms_p99": round(lat[int(len(lat) * 0.99)], 1),
        "latency_ms_max": round(lat[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    pg, broker = Postgres(), Mosquitto()
    hub: subprocess.Popen[bytes] | None = None
    pg.start()
    broker.start()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="bench-ws-"))
        port = free_port()
        config = tmp / "hub.yaml"
        config.write_text(
            f"mqtt: {{url: '{broker.url}'}}\nstorage: '{pg.dsn}'\n"
            f"http: {{host: 127.0.0.1, port: {port}}}\njwt_secret: '{SECRET}'\nflush_ms: 20\n"
        )
        subprocess.run([HUB, "migrate", "-c", config], check=True)
        subprocess.run(
            [HUB, "users", "add", "bench", "--role", "viewer", "--password-stdin", "-c", config],
            input=PASSWORD.encode(),
            check=True,
        )
        log = (tmp / "hub.log").open("wb")
        hub = subprocess.Popen([HUB, "serve", "--config", str(config)], stderr=log)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            token = client.post(
                "/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}
            ).json()["access_token"]
        proc = psutil.Process(hub.pid)
        rss_idle = proc.memory_info().rss
        result = asyncio.run(run(args, base.replace("http", "ws") + "/ws", token, broker))
        result["hub_rss_mib_idle"] = round(rss_idle / 2**20, 1)
        result["hub_rss_mib_after"] = round(proc.memory_info().rss / 2**20, 1)
        result["flush_ms"] = 20
        result["target"] = "p99 <= 100 ms"
        result["machine"] = {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "clients": "same process, same machine (shares the CPU with the hub)",
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        }
        result["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(json.dumps(result, indent=2))
        # One entry per client count, so runs at several scales sit side by side.
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        if "clients" in previous:  # an older single-run file
            previous = {f"clients_{previous['clients']}": previous}
        previous[f"clients_{args.clients}"] = result
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
    finally:
        if hub is not None:
            hub.terminate()
            try:
                hub.wait(20)
            except subprocess.TimeoutExpired:
                hub.kill()
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
