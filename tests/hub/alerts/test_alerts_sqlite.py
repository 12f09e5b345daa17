"""Alerts on the SQLite hub (the demo's storage): the same evaluator over the SQLite feed,
checkpoint and notification queue. In process: a threshold crossing raises one `active` and
clears once, a replayed batch adds nothing, a restarted evaluator repeats nothing. As processes:
`millstream-hub serve` on SQLite and Mosquitto, SIGKILLed between the crossing and the webhook's
notification, restarted: the real webhook receiver gets each transition exactly once; an
operator acknowledges, an admin adds a rule through the API.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.alerts.evaluator import AlertEvaluator
from hub.alerts.feed import write_feed_sqlite
from hub.alerts.notify import build_senders
from hub.alerts.rules import AlertsConfig
from hub.storage import CompactReading, SqliteStorage, TelemetryBatch, WriteBatch
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready
from tests.harness.webhook import WebhookReceiver
from tests.hub.alerts.test_alerts_e2e import Device, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _alerts(hook: str) -> AlertsConfig:
    return AlertsConfig.model_validate(
        {
            "reorder": "0ms",
            "notifiers": [{"name": "ops-hook", "kind": "webhook", "url": hook}],
            "rules": [
                {"name": "hot-oil", "kind": "threshold", "match": {"tag": "oil_temp"},
                 "above": 90, "hysteresis": 2, "notify": ["ops-hook"]},
            ],
        }
    )  # fmt: skip


def _batch(seq: int, ts: int, value: float) -> WriteBatch:
    readings = [CompactReading("oil_temp", ts, value, "good")]
    return WriteBatch(telemetry=[TelemetryBatch("s", "l1", "press-7", "src", seq, readings)])


def _rows(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def _evaluating(cfg: AlertsConfig, url: str) -> tuple[AlertEvaluator, asyncio.Event, Any]:
    evaluator = AlertEvaluator(cfg, url, build_senders(cfg, None, None))
    stop = asyncio.Event()
    return evaluator, stop, asyncio.create_task(evaluator.run(stop))


async def test_the_evaluator_over_sqlite_raises_one_active_and_clears_once(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    path = tmp_path / "hub.db"
    url = f"sqlite:///{path}"
    cfg = _alerts(receiver.url)
    now = time.time_ns() // 1_000_000 - 10_000
    async with SqliteStorage(path, hooks=[write_feed_sqlite]) as storage:
        await storage.migrate()
        evaluator, stop, task = await _evaluating(cfg, url)
        try:
            await storage.write(_batch(1, now, 80.0))
            await storage.write(_batch(2, now + 1000, 95.0))  # above 90: active
            assert (await storage.write(_batch(2, now + 1000, 95.0))).inserted == 0  # replay
            await eventually(_async(lambda: receiver.states() == ["active"]), 10)
            await storage.write(_batch(3, now + 2000, 89.0))  # inside the hysteresis band
            await storage.write(_batch(4, now + 3000, 87.5))  # past 90 - 2: cleared
            await eventually(_async(lambda: receiver.states() == ["active", "cleared"]), 10)
            assert evaluator.evaluated == 4
            assert evaluator.health()["evaluator"] == "ok"
        finally:
            stop.set()
            await task
        # A restarted evaluator resumes at its checkpoint: nothing again.
        evaluator, stop, task = await _evaluating(cfg, url)
        try:
            await storage.write(_batch(5, now + 4000, 88.0))
            await eventually(_async(lambda: evaluator.evaluated == 1), 10)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await task
    assert receiver.states() == ["active", "cleared"]
    bodies = receiver.bodies()
    assert bodies[0]["id"] == bodies[1]["id"]
    assert (bodies[0]["value"], bodies[1]["value"]) == (95.0, 87.5)
    assert _rows(path, "SELECT state, cleared_value FROM alerts") == [("cleared", 87.5)]
    assert _rows(path, "SELECT count(*) FROM alert_transitions") == [(2,)]
    assert _rows(path, "SELECT count(*) FROM alert_notifications") == [(0,)]
    assert _rows(path, "SELECT count(*) FROM alert_feed") == [(0,)]  # covered by the checkpoint


async def test_a_sqlite_hub_killed_between_crossing_and_notification_neither_misses_nor_doubles(
    mosquitto: Any, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    path = tmp_path / "hub.db"
    port = free_port()
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"""
mqtt: {{url: '{mosquitto.url}', client_id: hub-{uuid.uuid4().hex[:8]}, share_group: g{uuid.uuid4().hex[:8]}}}
storage: 'sqlite:///{path}'
http: {{host: 127.0.0.1, port: {port}}}
flush_ms: 20
jwt_secret: {os.urandom(24).hex()}
alerts:
  notifiers:
    - {{name: ops-hook, kind: webhook, url: '{receiver.url}'}}
  rules:
    - {{name: hot-oil, kind: threshold, match: {{tag: oil_temp}}, above: 90, hysteresis: 2,
       severity: critical, notify: [ops-hook]}}
"""  # noqa: E501
    )
    hub_cli(config, "migrate")
    key = hub_cli(config, "users", "api-key", "add", "andon", "--role", "operator").strip()
    admin = hub_cli(config, "users", "api-key", "add", "ops", "--role", "admin").strip()
    site = f"s{uuid.uuid4().hex[:8]}"
    receiver.failing = True  # the crossing is recorded, its notification not yet delivered
    hubs = [HubProcess(config, tmp_path / "hub1.log")]
    device = Device(mosquitto.host, mosquitto.port, site)
    try:
        await wait_ready(port, hubs[0])
        await device.send(80.0)
        await device.send(95.0)
        await eventually(_async(lambda: len(_rows(path, "SELECT id FROM alerts")) == 1))
        await eventually(_async(lambda: receiver.attempts > 0))
        assert _rows(path, "SELECT notifier, state FROM alert_notifications") == [
            ("ops-hook", "active")
        ]
        hubs[0].kill()  # SIGKILL between the crossing and the webhook's notification

        receiver.failing = False
        hubs.append(HubProcess(config, tmp_path / "hub2.log"))
        await wait_ready(port, hubs[1])
        await eventually(_async(lambda: receiver.states() == ["active"]), 30)
        async with httpx.AsyncClient(headers={"X-API-Key": key}) as api:
            base = f"http://127.0.0.1:{port}/api/v1"
            listed = (await api.get(f"{base}/alerts", params={"state": "active"})).json()
            assert [(a["rule"], a["site"], a["value"]) for a in listed] == [("hot-oil", site, 95.0)]
            health = (await api.get(f"http://127.0.0.1:{port}/health/ready")).text
            assert '"evaluator":"ok"' in health.replace(" ", "")
            # An operator acknowledges on SQLite too; the notifiers are told.
            alert = receiver.bodies()[0]["id"]
            acked = await api.post(f"{base}/alerts/{alert}/ack", json={"comment": "checked"})
            assert acked.status_code == 200, acked.text
            assert (acked.json()["state"], acked.json()["acked_by"]) == (
                "acknowledged",
                "key:andon",
            )
            again = await api.post(f"{base}/alerts/{alert}/ack", json={"comment": "x"})
            assert again.status_code == 409
            await eventually(_async(lambda: receiver.states() == ["active", "acknowledged"]), 10)
            assert receiver.bodies()[1]["comment"] == "checked"
            await device.send(89.0)  # inside the hysteresis band: still active
            await device.send(87.5)  # past 90 - 2: cleared
            lifecycle = ["active", "acknowledged", "cleared"]
            await eventually(_async(lambda: receiver.states() == lifecycle), 30)

            # Rules and shelves through the API, as on PostgreSQL.
            admin_headers = {"X-API-Key": admin}
            low = {"kind": "threshold", "match": {"tag": "oil_temp"}, "below": 10,
                   "notify": ["ops-hook"]}  # fmt: skip
            put = await api.put(f"{base}/alerts/rules/low-oil", json=low, headers=admin_headers)
            assert put.status_code == 200, put.text
            listed_rules = (await api.get(f"{base}/alerts/rules")).json()
            assert [(r["rule"]["name"], r["source"]) for r in listed_rules] == [
                ("hot-oil", "config"), ("low-oil", "api")
            ]  # fmt: skip
            shelf = await api.post(
                f"{base}/alerts/shelves", json={"machine": "mixer-*", "for": "1h", "reason": "x"}
            )
            assert shelf.status_code == 201, shelf.text
            assert len((await api.get(f"{base}/alerts/shelves")).json()) == 1
            gone = await api.delete(f"{base}/alerts/shelves/{shelf.json()['id']}")
            assert gone.status_code == 204
            deadline = time.monotonic() + 20  # the evaluator reloads API rules every 2 s
            while len(receiver.states()) < 4:
                assert time.monotonic() < deadline, receiver.states()
                await device.send(5.0)
                await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # nothing more arrives
        assert receiver.states() == [*lifecycle, "active"]
        assert receiver.bodies()[3]["rule"] == "low-oil"
        assert _rows(path, "SELECT count(*) FROM alert_transitions") == [(4,)]
    finally:
        device.close()
        for h in hubs:
            h.close()


def _async(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run
