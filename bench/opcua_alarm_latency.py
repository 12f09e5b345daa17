"""OPC-UA alarm condition → the hub: how long from a PLC raising an alarm to `active` in PostgreSQL.

An asyncua server with the guard-door OffNormalAlarm (edge_agent/simulators/opcua_alarms.py),
`edge-agent run` subscribed to its events (profile `events:`), a private Mosquitto, a
`millstream-hub serve` on a private PostgreSQL. Each round raises the alarm, waits for the
`active` row, clears it, waits for the `cleared` row, and acknowledges it at the panel (so the
next round is a new occurrence). Times are from the server-side write to the row being visible
to a PostgreSQL reader (polled every 5 ms); issue "Machine events" asks for ≤ 2 s.

    .venv/bin/python bench/opcua_alarm_latency.py [--rounds 30]

Prints the figures and writes bench/results/opcua_alarm_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hubproc import start_hub, stop_hub
from edge_agent.simulators.opcua_alarms import (
    ALARMS_NAMESPACE,
    press_server,
)
from tests.harness import Mosquitto, Postgres, free_port

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
RESULTS = Path(__file__).with_name("results") / "opcua_alarm_latency.json"
SITE = "bench"

PROFILE = """\
profile: press-conditions
vendor: Millstream bench
model: a press whose PLC reports alarm conditions over OPC-UA
protocol: opcua
source: bench/opcua_alarm_latency.py
tags:
  - {{name: guard_open, browse_path: "/Objects/{ns}:Press/{ns}:GuardOpen", sampling_ms: 1000}}
events: {{}}
"""


async def count_rows(conn: asyncpg.Connection, state: str) -> int:
    """Rows stored in `state`."""
    found = await conn.fetchval(
        "SELECT count(*) FROM machine_events WHERE site = $1 AND state = $2", SITE, state
    )
    return int(found)


async def wait_rows(
    conn: asyncpg.Connection, state: str, count: int, start: float, limit_s: float = 30
) -> float:
    """Seconds from `start` (monotonic) until `count` rows in `state` are stored (polled every
    5 ms)."""
    while time.monotonic() - start < limit_s:
        if await count_rows(conn, state) >= count:
            return time.monotonic() - start
        await asyncio.sleep(0.005)
    raise SystemExit(f"no {state} row {count} within {limit_s} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run(rounds: int, workdir: Path) -> dict[str, object]:
    broker, pg = Mosquitto(), Postgres()
    broker.start()
    pg.start()
    url = f"opc.tcp://127.0.0.1:{free_port()}/press/"
    server, alarm = await press_server(url)
    ns = await server.get_namespace_index(ALARMS_NAMESPACE)
    hub = agent = None
    try:
        dsn = pg.create_database("bench")
        hub = start_hub(workdir, broker.url, dsn, "flush_ms: 20\n")
        (workdir / "press-conditions.yaml").write_text(PROFILE.format(ns=ns))
        config = workdir / "agent.yaml"
        config.write_text(
            f"agent: {{id: pc-bench, site: {SITE}, line: l1}}\n"
            f'mqtt: {{url: "{broker.url}"}}\n'
            "buffer: {path: ./buffer.db}\n"
            "devices:\n"
            "  - machine: press-01\n"
            "    profile: ./press-conditions.yaml\n"
            f"    opcua: {{url: '{url}'}}\n"
        )
        async with server:
            await alarm.start()
            with (workdir / "agent.log").open("ab") as out:
                agent = subprocess.Popen(  # noqa: ASYNC220 -- started once, not waited for here
                    [EDGE_AGENT, "run", str(config)], stdout=out, stderr=out
                )
            conn = await asyncpg.connect(dsn)
            try:
                raised, cleared = [], []
                await asyncio.sleep(5)  # the agent connects and subscribes
                for _ in range(rounds):
                    active = await count_rows(conn, "active")
                    start = time.monotonic()
                    await alarm.set(True)
                    raised.append(await wait_rows(conn, "active", active + 1, start))
                    # Cleared, then acknowledged at the panel: two `cleared` rows (the second
                    # one acked), and the next round is a new occurrence.
                    done = await count_rows(conn, "cleared")
                    start = time.monotonic()
                    await alarm.set(False)
                    cleared.append(await wait_rows(conn, "cleared", done + 1, start))
                    assert await alarm.acknowledge(alarm._event.event.EventId.Value, "") is None
                    await wait_rows(conn, "cleared", done + 2, time.monotonic())
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
                await alarm.stop()
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        if hub is not None:
            stop_hub(hub.proc)
        broker.stop()
        pg.stop()

    def figures(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }

    return {
        "benchmark": "opcua_alarm_latency",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "settings": {
            "rounds": rounds,
            "hub_flush_ms": 20,
            "events_publishing_interval_ms": 200,
            "agent": "edge-agent run, mqtt defaults (max_delay 100 ms), buffer synchronous=FULL",
            "postgresql": "test harness: fsync=off, synchronous_commit=on",
            "measured": "server-side write of the variable → row visible in PostgreSQL",
        },
        "raise_to_active": figures(raised),
        "clear_to_cleared": figures(cleared),
        "target": "raise → active in the hub ≤ 2 s",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    result = asyncio.run(run(args.rounds, Path(tempfile.mkdtemp(prefix="alarm-bench-"))))
    print(json.dumps(result, indent=2))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
