"""The fleet-wide drain budget (issue 23): 100 agents, each with 10 minutes of backlog, reconnect
at once after a central outage. The hub measures what it can commit and publishes its budget
(retained `ms/v1/hub/drain/{instance}`); every agent's backlog lane keeps to its share.

Real Mosquitto with a bounded queue for the hub's session (5,000 batches: without a budget, 100
agents with 100 batches in flight each overflow it), real `millstream-hub serve`, PostgreSQL,
and the agents' real buffer and publisher (tests/harness/fleet.py, 25 per process). Ground truth:
every reading stored, no batch sent twice, no message the broker dropped. The drain time against
the hub's measured capacity is printed (bench/drain_budget.py records it)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hubtest import pg_fetch, unique
from paho.mqtt.enums import CallbackAPIVersion

import wire
from tests.harness import free_port
from tests.harness.fleet import SITE, TAGS
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

PROCESSES = 4
PER_PROCESS = 25
MINUTES = 10.0
QUEUE = 5_000  # the broker's queue for the hub's session, in batches


async def _stored(dsn: str) -> int:
    rows = await pg_fetch(
        dsn,
        "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id WHERE s.site = $1",
        SITE,
    )
    return int(rows[0][0])


class BudgetWatch:
    """Every drain budget the hub publishes, as (arrival, budget)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.seen: list[tuple[float, wire.DrainBudget]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._client.connect(host, int(port))
        self._client.subscribe(wire.DRAIN_FILTER, qos=1)
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        budget = wire.parse_drain(msg.payload)
        if budget is not None:
            self.seen.append((time.monotonic(), budget))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _fleet(broker: str, n: int, folder: Path) -> subprocess.Popen[bytes]:
    with (folder / f"fleet-{n}.log").open("ab") as log:
        return _start(broker, n, folder, log)


def _start(broker: str, n: int, folder: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.harness.fleet", "--broker", broker,
         "--first", str(n * PER_PROCESS), "--agents", str(PER_PROCESS),
         "--minutes", str(MINUTES), "--dir", str(folder / f"fleet-{n}"),
         "--go", str(folder / "go"), "--report", str(folder / f"report-{n}.json")],
        stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip


async def test_a_fleet_drains_at_the_hubs_pace_without_drops_or_republishing(
    mosquitto_factory: Any, pg_dsn: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=False, max_queued_messages=QUEUE)
    port = free_port()
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text(
        f"mqtt: {{url: '{broker.url}', client_id: {unique('hub-')}, share_group: {unique('g')}}}\n"
        f"storage: '{pg_dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(hub_yaml, "migrate")
    hub = HubProcess(hub_yaml, tmp_path / "hub.log")
    watch = BudgetWatch(broker.url)
    fleets: list[subprocess.Popen[bytes]] = []
    try:
        await wait_ready(port, hub)
        fleets = [_fleet(broker.url, n, tmp_path) for n in range(PROCESSES)]
        for n in range(PROCESSES):
            ready = tmp_path / f"report-{n}.ready"
            for _ in range(1200):
                if ready.exists():
                    break
                assert fleets[n].poll() is None, (tmp_path / f"fleet-{n}.log").read_text()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"fleet {n} never filled its buffers")
        expected = PROCESSES * PER_PROCESS * int(MINUTES * 60) * TAGS
        started = time.monotonic()
        (tmp_path / "go").touch()
        # Drained when PostgreSQL has every reading (the fleet's own wind-down is not counted).
        while await _stored(pg_dsn) < expected:
            assert time.monotonic() - started < 300, "not drained in 300 s"
            assert all(p.poll() in (None, 0) for p in fleets)
            await asyncio.sleep(0.1)
        drained = time.monotonic() - started
        for proc in fleets:
            assert await asyncio.to_thread(proc.wait, 240) == 0
    finally:
        for proc in fleets:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        watch.close()
        hub.close()

    reports: dict[str, dict[str, Any]] = {}
    for n in range(PROCESSES):
        reports.update(json.loads((tmp_path / f"report-{n}.json").read_text()))
    total = sum(r["filled"] for r in reports.values())
    assert len(reports) == PROCESSES * PER_PROCESS
    assert total == PROCESSES * PER_PROCESS * int(MINUTES * 60) * TAGS
    assert await _stored(pg_dsn) == total  # every reading stored, once
    assert all(r["left"] == 0 for r in reports.values()), reports
    # No republish storm: no batch waited so long for its receipt that it went again.
    assert sum(r["republished_batches"] for r in reports.values()) == 0
    # No broker drop (Mosquitto says so when the hub's queue overflows).
    assert "dropped" not in broker.log_path.read_text(errors="replace").lower()
    # Every agent heard the budget and kept below its own backlog_rate.
    assert all(r["budget_max"] is not None for r in reports.values()), reports
    during = [b for t, b in watch.seen if started <= t <= started + drained]
    capacity = max(b.capacity for b in during)
    ideal = total / capacity
    print(
        f"\n{total} readings from {len(reports)} agents drained in {drained:.1f} s; the hub's"
        f" measured capacity {capacity:,.0f}/s → {ideal:.1f} s at capacity"
        f" ({drained / ideal:.2f}×); budgets per agent"
        f" {min(b.per_agent for b in during):,.0f}–{max(b.per_agent for b in during):,.0f}/s,"
        f" draining agents seen {max(b.draining for b in during)}"
    )
    timeline = ", ".join(
        f"{t - started:+.1f}s {b.capacity / 1000:.0f}k/{b.draining}" for t, b in watch.seen
    )
    print(f"budget over time (capacity/draining agents): {timeline}")
