"""The hub as an operator runs it: `millstream-hub migrate|serve` subprocesses, SIGKILL, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hubtest import MqttTestClient, count_readings, eventually, pg_fetch, telemetry, unique

from tests.harness import free_port
from tests.harness.hubproc import HUB, HubProcess, hub_env, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="session")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def write_config(tmp_path: Path, mqtt_url: str, storage: str) -> tuple[Path, int]:
    port = free_port()
    path = tmp_path / "hub.yaml"
    path.write_text(
        f"mqtt:\n  url: '{mqtt_url}'\n  client_id: {unique('hub-')}\n  share_group: {unique('g')}\n"
        f"  session_expiry_s: 300\n"
        f"storage: '{storage}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"flush_ms: 20\n"
        # The HTTP API refuses to start without a signing secret (issue 9).
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    return path, port


@pytest.fixture
def hub_processes() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for p in started:
        p.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HUB, *args], capture_output=True, text=True, timeout=60, check=False, env=hub_env()
    )


async def test_migrate_serve_health_metrics_and_graceful_sigterm(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, hub_processes: list[HubProcess]
) -> None:
    config, port = write_config(tmp_path, mosquitto.url, pg_dsn)
    first = run_cli("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "0001_initial.sql" in first.stdout
    again = run_cli("migrate", "--config", str(config))
    assert again.returncode == 0
    assert "up to date" in again.stdout

    hub = HubProcess(config, tmp_path / "hub.log")
    hub_processes.append(hub)
    await wait_ready(port, hub)
    site, src = unique("s"), unique("src")
    client = MqttTestClient(mosquitto.host, mosquitto.port)
    try:
        await client.apublish(f"ms/v1/{site}/l1/m1/telemetry", telemetry(src, 1, now_ms(), 10))
        await client.apublish(f"ms/v1/{site}/l1/m1/telemetry", b"{not json")

        async def stored() -> bool:
            return await count_readings(pg_dsn, site) == 10

        await eventually(stored)
    finally:
        client.close()
    async with httpx.AsyncClient() as http:
        live = await http.get(f"http://127.0.0.1:{port}/health/live")
        assert live.json() == {"status": "ok"}
        ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
        assert ready.json()["storage"] == "ok"
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        # X-Forwarded-For is believed from no one unless http.trusted_proxies names them: wrong
        # logins "from" twelve addresses come from one, and its login limit holds (believed,
        # each address would get its own limit and all twelve would be a plain 401).
        codes = [
            (
                await http.post(
                    f"http://127.0.0.1:{port}/api/v1/auth/login",
                    json={"username": f"user{i}", "password": "not-the-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            ).status_code
            for i in range(12)
        ]
        # Security headers on what the hub serves; token answers are never cached.
        for path in ("/", "/health/live", "/api/v1/machines"):
            headers = (await http.get(f"http://127.0.0.1:{port}{path}")).headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        login = await http.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login", json={"username": "x", "password": "y"}
        )
        assert login.headers["cache-control"] == "no-store"
    assert codes[0] == 401
    assert codes[-1] == 429

    assert 'millstream_ingest_messages_total{kind="telemetry"}' in metrics
    assert 'millstream_dead_letters_total{reason="bad_json"} 1.0' in metrics
    assert "millstream_commit_seconds_bucket" in metrics
    assert "millstream_ingest_backlog_messages" in metrics

    hub.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hub.proc.wait, 30) == 0, hub.log_text()


async def test_serve_refuses_an_unmigrated_database(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    config, _ = write_config(tmp_path, mosquitto.url, pg_dsn)
    done = await asyncio.to_thread(run_cli, "serve", "--config", str(config))
    assert done.returncode == 1
    assert "millstream-hub migrate" in done.stderr


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, hub_processes: list[HubProcess]
) -> None:
    config, port = write_config(tmp_path, mosquitto.url, pg_dsn)
    assert run_cli("migrate", "--config", str(config)).returncode == 0
    hub = HubProcess(config, tmp_path / "hub1.log")
    hub_processes.append(hub)
    await wait_ready(port, hub)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    t0 = now_ms() - 600_000
    client = MqttTestClient(mosquitto.host, mosquitto.port)
    client.subscribe_receipts(src)
    try:
        for seq in range(300):
            await client.apublish(topic, telemetry(src, seq, t0 + seq * 200, 200))
            if seq == 150:
                # Mid-stream, with messages received but not yet committed and acknowledged.
                workers = psutil.Process(hub.proc.pid).children(recursive=True)
                hub.proc.kill()
                await asyncio.to_thread(hub.proc.wait, 10)
        # Its validation workers do not outlive it (they would idle for ever, one set per crash).
        assert workers, "the hub started no parse workers"
        _, alive = await asyncio.to_thread(psutil.wait_procs, workers, 15)
        assert not alive, f"workers outlived the killed hub: {alive}"
        restarted = HubProcess(config, tmp_path / "hub2.log")
        hub_processes.append(restarted)
        await wait_ready(port, restarted)

        async def all_stored() -> bool:
            return await count_readings(pg_dsn, site) == 300 * 200

        await eventually(all_stored, 90)

        # A receipt queued when the hub died is gone; the publisher republishes what was not
        # receipted in time (as the agent does), the hub dedups and receipts it.
        await asyncio.sleep(1.0)
        for seq in sorted(set(range(300)) - client.receipted(src)):
            await client.apublish(topic, telemetry(src, seq, t0 + seq * 200, 200))

        async def all_receipted() -> bool:
            return set(range(300)) <= client.receipted(src)

        await eventually(all_receipted)
        assert await count_readings(pg_dsn, site) == 300 * 200
    finally:
        client.close()
    rows = await pg_fetch(
        pg_dsn,
        "SELECT coalesce(sum(b.count), 0) FROM rollup_minute b JOIN series s ON s.id = b.series_id"
        " WHERE s.site = $1",
        site,
    )
    assert rows[0][0] == 300 * 200  # replays after the kill were not counted twice
