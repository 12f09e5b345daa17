"""Alert latency: reading → webhook call, at 20,000 readings/s through a real hub.

Target (issue "alerts"): p99 ≤ 1 s from a reading's commit to the notifier's call at 20,000
readings/s. Set-up: `millstream-hub serve` on PostgreSQL and Mosquitto (both started here;
PostgreSQL with the test harness's fsync=off, synchronous_commit on), 20 machines × 50 tags
published as one batch per machine every second (1,000 readings per batch, timestamps spread
over the second), a z-score rule over every tag (so every reading is really evaluated) and a
threshold rule on each machine's `spike` tag, which crosses it a few times a second at random
and comes back on the next reading. A real HTTP server receives the webhooks.

Measured: the webhook's arrival minus the moment the batch holding the crossing reading was
handed to the MQTT client — so the figure also holds the publish → commit time (MQTT, flush,
PostgreSQL) and is an upper bound of commit → notifier.

    .venv/bin/python bench/alerts_latency.py [--seconds 60] [--rate 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire
from bench.hubproc import start_hub, stop_hub
from tests.harness import Mosquitto, Postgres
from tests.harness.webhook import WebhookReceiver

RESULTS = Path(__file__).parent / "results" / "alerts_latency.json"
MACHINES = 20
TAGS = 49  # + the `spike` tag: 50 series per machine


def rules_yaml(hook: str) -> str:
    return (
        "alerts:\n"
        f"  notifiers: [{{name: hook, kind: webhook, url: '{hook}'}}]\n"
        "  rules:\n"
        "    - {name: odd, kind: zscore, match: {tag: 'v*'}, window: 10m, z: 6}\n"
        "    - {name: spike, kind: threshold, match: {tag: spike}, above: 1000,"
        " severity: critical, notify: [hook]}\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=20_000, help="readings per second")
    ap.add_argument("--crossings", type=float, default=3.0, help="threshold crossings per second")
    args = ap.parse_args()
    per_batch = args.rate // MACHINES
    rng = random.Random(7)
    broker, pg = Mosquitto(), Postgres()
    broker.start()
    pg.start()
    receiver = WebhookReceiver()
    workdir = Path(tempfile.mkdtemp(prefix="alerts-bench-"))
    hub = None
    try:
        dsn = pg.create_database("bench")
        hub = start_hub(workdir, broker.url, dsn, "flush_ms: 50\n" + rules_yaml(receiver.url))
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="alerts-bench",
                             protocol=MQTTProtocolVersion.MQTTv5)  # fmt: skip
        client.max_inflight_messages_set(200)
        client.connect(broker.host, broker.port)
        client.loop_start()
        crossings: dict[tuple[str, int], int] = {}  # (machine, ts) -> publish time (ms)
        start = time.monotonic()
        second = 0
        hub_proc = psutil.Process(hub.proc.pid)
        cpu0 = sum(hub_proc.cpu_times()[:2]) + sum(
            sum(c.cpu_times()[:2]) for c in hub_proc.children(recursive=True)
        )
        while second < args.seconds:
            due = start + second
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t_second = time.time_ns() // 1_000_000
            crossing_machines = {
                rng.randrange(MACHINES) for _ in range(int(args.crossings + rng.random()))
            }
            for m in range(MACHINES):
                machine = f"m{m:02d}"
                readings = []
                steps = max(1, per_batch // (TAGS + 1))
                for k in range(steps):
                    ts = t_second + k * (1000 // steps)
                    for t in range(TAGS):
                        readings.append(wire.Reading(tag=f"v{t}", ts=ts, v=50 + rng.gauss(0, 1)))
                    spike = m in crossing_machines and k == steps // 2
                    readings.append(wire.Reading(tag="spike", ts=ts, v=2000.0 if spike else 1.0))
                    if spike:
                        crossings[(machine, ts)] = time.time_ns() // 1_000_000
                payload = wire.encode_telemetry(f"bench-{machine}", second, readings)
                client.publish(f"ms/v1/plant/line/{machine}/telemetry", payload, qos=1)
            second += 1
        time.sleep(5.0)  # the last notifications arrive
        cpu = sum(hub_proc.cpu_times()[:2]) + sum(
            sum(c.cpu_times()[:2]) for c in hub_proc.children(recursive=True)
        )
        client.loop_stop()
        got = {
            (b["machine"], b["ts"]): arrived
            for arrived, _headers, raw in receiver.got
            if (b := json.loads(raw))["state"] == "active"
        }
        lat = sorted(got[k] - sent for k, sent in crossings.items() if k in got)
        missed = len(crossings) - len(lat)
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else None
        result = {
            "benchmark": "alerts_latency",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "settings": {
                "readings_per_s": MACHINES * steps * (TAGS + 1),
                "seconds": args.seconds,
                "machines": MACHINES,
                "flush_ms": 50,
                "reorder_ms": 300,
                "postgresql": "test harness: fsync=off, synchronous_commit=on, shared_buffers=32MB",
                "rules": "zscore over every tag, threshold on `spike`",
            },
            "crossings": len(crossings),
            "notified": len(lat),
            "missed": missed,
            "reading_to_webhook_ms_p50": statistics.median(lat) if lat else None,
            "reading_to_webhook_ms_p99": p99,
            "reading_to_webhook_ms_max": lat[-1] if lat else None,
            "hub_cpu_cores": round((cpu - cpu0) / (args.seconds + 5.0), 2),
            "target_p99_ms": 1000,
            "meets_target": p99 is not None and p99 <= 1000 and missed == 0,
        }
        print(json.dumps(result, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    finally:
        if hub is not None:
            stop_hub(hub.proc)
        receiver.close()
        broker.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
