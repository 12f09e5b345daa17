"""Machine events published straight to MQTT (an alarm raised, acknowledged, cleared) are stored
once, receipted by digest like telemetry, and a bad event is set aside alone — on PostgreSQL and
on SQLite, through a real Mosquitto and an in-process hub."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hubtest import MqttTestClient, eventually, hub_config, migrate, now_ms, pg_fetch, running_hub

import wire

pytestmark = pytest.mark.asyncio(loop_scope="session")


def batch(src: str, seq: int, *events: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "src": src, "seq": seq, "events": list(events)}).encode()


def alarm(t: int, state: str, **over: Any) -> dict[str, Any]:
    return {
        "id": "guard-open:1",
        "ts": t,
        "source": "guard_door",
        "type": "alarm",
        "severity": 700,
        "message": "Guard door open",
        "state": state,
        "fields": {"door": 2},
    } | over


@pytest.fixture(params=["postgresql", "sqlite"])
async def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        url = request.getfixturevalue("pg_dsn")
    await migrate(url)
    return url


async def rows(url: str, site: str) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT machine, event_id, ts, state, severity, message, fields, src FROM machine_events"
        " WHERE site = {} ORDER BY ts"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql.format("?"), (site,)))
    return [tuple(r) for r in await pg_fetch(url, sql.format("$1"), site)]


async def dead(url: str, site: str) -> list[tuple[str, str]]:
    sql = "SELECT reason, message FROM dead_letters WHERE topic LIKE {} ORDER BY id"
    pattern = f"ms/v1/{site}/%"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql.format("?"), (pattern,)))
    return [tuple(r) for r in await pg_fetch(url, sql.format("$1"), pattern)]


async def test_events_are_stored_once_receipted_and_a_bad_one_set_aside(
    mosquitto: Any, storage_url: str
) -> None:
    site = f"ev{now_ms() % 10**9}"
    topic = wire.events_topic(site, "l1", "press-01")
    t = now_ms()
    device = MqttTestClient(mosquitto.host, mosquitto.port)
    device.subscribe_receipts("press-gw")
    raised = batch("press-gw", 1, alarm(t - 3000, "active"))
    try:
        async with running_hub(hub_config(mosquitto.url, storage_url)):
            await device.apublish(topic, raised)
            await device.apublish(topic, raised)  # no receipt yet: sent again, stored once
            later = batch(
                "press-gw", 2,
                alarm(t - 2000, "acked", fields={"by": "shift lead"}),
                alarm(t - 1000, "cleared", severity=0),  # breaks the 1-1000 scale: alone
                alarm(t - 500, "cleared", message="Guard door closed"),
            )  # fmt: skip
            await device.apublish(topic, later)

            async def receipted() -> bool:
                return device.receipted("press-gw") >= {1, 2}

            await eventually(receipted)
            stored = await rows(storage_url, site)
            assert [(r[1], r[2], r[3]) for r in stored] == [
                ("guard-open:1", t - 3000, "active"),
                ("guard-open:1", t - 2000, "acked"),
                ("guard-open:1", t - 500, "cleared"),
            ]
            assert stored[0][4:] == (700, "Guard door open", '{"door":2}', "press-gw")
            assert json.loads(stored[1][6]) == {"by": "shift lead"}
            [(reason, message)] = await dead(storage_url, site)
            assert reason == "bad_field"
            assert message.startswith("1 of 3 events refused, the rest stored: events[1].severity")
    finally:
        device.close()
