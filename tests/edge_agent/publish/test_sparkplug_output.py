"""`mqtt.output: sparkplug` end to end: `edge-agent run` as a Sparkplug B edge node, polling a
pymodbus counter (every value it serves is a reading that must be stored once), a hub process as
the primary host, and Eclipse Tahu's own decoder reading everything the agent publishes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.edge_agent.drivers.modbus.modbus_harness import tcp_server
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli
from tests.harness.tahu import EdgeNode, host_ready
from tests.hub.commands.test_config_e2e import COUNTER_PROFILE, CounterDevice

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))


async def _stored(dsn: str, site: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT r.value FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.site = $1 AND s.line = 'l1' AND s.machine = 'counter-01'"
            " AND s.tag = 'count' ORDER BY r.ts",
            site,
        )
        return [int(r["value"]) for r in rows]
    finally:
        await conn.close()


async def _buffer_depth(dsn: str, agent_id: str) -> int | None:
    conn = await asyncpg.connect(dsn)
    try:
        depth: int | None = await conn.fetchval(
            "SELECT buffer_depth FROM agents WHERE agent_id = $1", agent_id
        )
        return depth
    finally:
        await conn.close()


async def test_an_agent_publishes_as_a_sparkplug_edge_node_and_loses_nothing_to_a_hub_crash(
    mosquitto_factory: Any, pg_dsn: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=False, upgrade_qos0=True)
    tag = uuid.uuid4().hex[:8]
    site, agent_id, host_id = f"s{tag}", f"pc-{tag}", f"host-{tag}"
    http = free_port()
    hub_config = tmp_path / "hub.yaml"
    hub_config.write_text(
        f"mqtt: {{url: '{broker.url}', client_id: hub-{tag}, share_group: g{tag}}}\n"
        f"storage: '{pg_dsn}'\nhttp: {{host: 127.0.0.1, port: {http}}}\nflush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\nsparkplug: {{host_id: {host_id}}}\n"
    )
    hub_cli(hub_config, "migrate")
    counter, modbus = CounterDevice(), free_port()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "test-counter.yaml").write_text(COUNTER_PROFILE)
    (agent_dir / "agent.yaml").write_text(
        f"agent: {{id: {agent_id}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{broker.url}", reconnect_min: 100ms, status_interval: 1s,'
        f" output: sparkplug, sparkplug: {{host_id: {host_id}}}}}\n"
        "buffer: {path: ./buffer.db}\ndevices:\n"
        "  - machine: counter-01\n    profile: test-counter\n"
        f"    modbus: {{host: 127.0.0.1, port: {modbus}, unit: 1}}\n"
    )
    watcher = EdgeNode()
    watcher.send("watch", url=broker.url, topic=f"spBv1.0/{site}/#")
    await watcher.expect(lambda e: e.get("event") == "watching")
    hub = HubProcess(hub_config, tmp_path / "hub-1.log")
    restarted: HubProcess | None = None
    agent: asyncio.subprocess.Process | None = None
    log = (tmp_path / "agent.log").open("ab")
    try:
        await host_ready(http, hub)
        async with tcp_server([counter.device], modbus):
            agent = await asyncio.create_subprocess_exec(
                EDGE_AGENT, "run", str(agent_dir / "agent.yaml"), stderr=log
            )

            async def stored_at_least(n: int, within: float = 60) -> None:
                deadline = time.monotonic() + within
                while len(await _stored(pg_dsn, site)) < n:
                    assert time.monotonic() < deadline, (tmp_path / "agent.log").read_text()
                    await asyncio.sleep(0.2)

            await stored_at_least(10)
            hub.kill()  # SIGKILL while the counter keeps counting
            await asyncio.sleep(3)
            restarted = HubProcess(hub_config, tmp_path / "hub-2.log")
            await host_ready(http, restarted)
            await stored_at_least(len(counter.served) + 10)
            agent.terminate()  # a clean stop: what the buffer holds stays there
            async with asyncio.timeout(30):
                assert await agent.wait() == 0
            agent = None
        served = list(counter.served)

        async def everything() -> bool:
            return len(await _stored(pg_dsn, site)) >= len(served)

        # The buffer drains on the hub's receipts, so a restarted agent sends what is left.
        agent = await asyncio.create_subprocess_exec(
            EDGE_AGENT, "run", str(agent_dir / "agent.yaml"), stderr=log
        )
        deadline = time.monotonic() + 60
        while not await everything():
            assert time.monotonic() < deadline, "not everything the device served was stored"
            await asyncio.sleep(0.2)
        # Every value the device served, once: nothing lost to the crash, nothing doubled.
        assert await _stored(pg_dsn, site) == served
        deadline = time.monotonic() + 30
        while await _buffer_depth(pg_dsn, agent_id) != 0:
            assert time.monotonic() < deadline, "the buffer did not drain on receipts"
            await asyncio.sleep(0.2)
    finally:
        if agent is not None and agent.returncode is None:
            agent.terminate()
            async with asyncio.timeout(30):
                await agent.wait()
        log.close()
        hub.close()
        if restarted is not None:
            restarted.close()
        watcher.close()
    # Tahu's decoder read every message the agent published as the Sparkplug it claims to be.
    seen = [watcher.events.get_nowait() for _ in range(watcher.events.qsize())] + watcher.seen
    decoded = [e for e in seen if e.get("event") == "decoded"]
    assert not [e for e in seen if e.get("event") == "undecodable"]
    kinds = {e["topic"].split("/")[2] for e in decoded}
    assert {"NBIRTH", "DBIRTH", "DDATA"} <= kinds, kinds
    nbirth = next(e["payload"] for e in decoded if "/NBIRTH/" in e["topic"])
    assert nbirth["seq"] in (0, "0") or int(nbirth["seq"]) == 0
    assert any(m["name"] == "bdSeq" for m in nbirth["metrics"])
    dbirth = next(e["payload"] for e in decoded if "/DBIRTH/" in e["topic"])
    assert [m["name"] for m in dbirth["metrics"]] == ["count"]
    ddata = [e["payload"] for e in decoded if "/DDATA/" in e["topic"]]
    values = [int(m["value"]) for p in ddata for m in p["metrics"]]
    assert set(served) <= set(values), "Tahu read back every value the device served"
    assert any(m.get("isHistorical") for p in ddata for m in p["metrics"]), (
        "what waited for the host went out as history"
    )
    assert all("alias" in m for p in ddata for m in p["metrics"])
    assert json.dumps(ddata)  # plain JSON: nothing but what Tahu decodes
