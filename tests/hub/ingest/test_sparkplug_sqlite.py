"""The Sparkplug host on the demo's storage (SQLite): births are kept in the file, so data by
alias the broker held while the hub was stopped is stored under its names after the restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hubtest import MqttTestClient, eventually, hub_config, migrate, running_hub, unique

from hub.config import SparkplugConfig
from wire import sparkplug as spb

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


def _rows(db: Path, site: str) -> list[tuple[str, int, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT s.tag, r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.site = ? ORDER BY r.ts",
            (site,),
        ).fetchall()


async def test_births_survive_a_restart_on_sqlite(mosquitto: Any, tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    url = f"sqlite:///{db}"
    await migrate(url)
    group, host_id = unique("g"), unique("host")
    config = hub_config(mosquitto.url, url, sparkplug=SparkplugConfig(host_id=host_id))
    t = int(time.time() * 1000) - 10_000
    node = MqttTestClient(mosquitto.host, mosquitto.port)
    state: list[dict[str, Any]] = []
    try:
        async with running_hub(config) as hub:
            assert hub.sparkplug is not None

            async def subscribed() -> bool:
                return bool(hub.sparkplug and hub.sparkplug.health()["subscribed"])

            await eventually(subscribed)
            birth = spb.SpbPayload(t, 0, [spb.SpbMetric("Oil/Temp", 7, t, 10, 1.0)])
            await node.apublish(f"spBv1.0/{group}/DBIRTH/n/d", spb.encode(birth))

            async def born() -> bool:
                return len(_rows(db, group)) == 1

            await eventually(born)
        # Stopped: the host said so (retained STATE), and data by alias waits at the broker.
        data = spb.SpbPayload(t + 1, 1, [spb.SpbMetric(None, 7, t + 1, 10, 2.0)])
        await node.apublish(f"spBv1.0/{group}/DDATA/n/d", spb.encode(data))
        watcher = MqttTestClient(mosquitto.host, mosquitto.port)
        got: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        watcher._client.on_message = lambda c, u, m: loop.call_soon_threadsafe(
            got.put_nowait, m.payload
        )
        watcher._client.subscribe(spb.state_topic(host_id), qos=1)
        state.append(json.loads(await asyncio.wait_for(got.get(), 10)))
        watcher.close()
        async with running_hub(config):

            async def resolved() -> bool:
                return _rows(db, group) == [("Oil.Temp", t, 1.0), ("Oil.Temp", t + 1, 2.0)]

            await eventually(resolved)
    finally:
        node.close()
    assert state[0]["online"] is False
