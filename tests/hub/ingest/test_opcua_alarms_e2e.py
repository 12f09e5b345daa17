"""An OPC-UA alarm condition end to end, across an agent kill -9 and a hub SIGKILL: an asyncua
server with an OffNormalAlarm (edge_agent/simulators/opcua_alarms.py) → `edge-agent run`
(profile `events:`, ConditionRefresh, store-and-forward) → Mosquitto → `millstream-hub serve`
→ PostgreSQL, acknowledged from the hub's API (the dashboard's button) through the agent's command
path. Ground truth is the condition's transitions: each one row, none lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hubtest import eventually, now_ms, pg_fetch, unique

from edge_agent.simulators.opcua_alarms import OffNormalCondition, press_server
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))

PROFILE = """\
profile: press-conditions
vendor: Millstream tests
model: a press whose PLC reports alarm conditions over OPC-UA
protocol: opcua
source: this test
tags:
  - name: guard_open
    browse_path: "/Objects/{ns}:Press/{ns}:GuardOpen"
    sampling_ms: 100
events: {{}}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def press() -> AsyncIterator[tuple[OffNormalCondition, str, int]]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/press/"
    server, alarm = await press_server(url)
    ns = await server.get_namespace_index("urn:millstream:test:alarms")
    async with server:
        await alarm.start()
        yield alarm, url, ns
        await alarm.stop()


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([EDGE_AGENT, "run", str(config)], stdout=out, stderr=out)


async def test_condition_transitions_once_across_agent_and_hub_kills(
    press: tuple[OffNormalCondition, str, int],
    mosquitto_factory: Any,
    pg_dsn: str,
    tmp_path: Path,
) -> None:
    alarm, url, ns = press
    broker = mosquitto_factory(persistence=False)
    site = f"oa{now_ms() % 10**9}"
    port = free_port()
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text(
        f"mqtt: {{url: '{broker.url}', client_id: {unique('hub-')}, share_group: {unique('g')},"
        " session_expiry_s: 300}\n"
        f"storage: '{pg_dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "flush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(hub_yaml, "migrate")
    key = hub_cli(hub_yaml, "users", "api-key", "add", "shift-lead", "--role", "operator")
    operator = {"X-API-Key": key.strip()}
    (tmp_path / "press-conditions.yaml").write_text(PROFILE.format(ns=ns))
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{id: pc-{site}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{broker.url}", receipt_timeout: 2s}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n"
        "  - machine: press-01\n"
        "    profile: ./press-conditions.yaml\n"
        f"    opcua: {{url: '{url}'}}\n"
    )
    agent_log = tmp_path / "agent.log"

    async def rows() -> list[tuple[str, str]]:
        found = await pg_fetch(
            pg_dsn,
            "SELECT event_id, state FROM machine_events WHERE site = $1 ORDER BY ts, received_at",
            site,
        )
        return [(r[0], r[1]) for r in found]

    async def states(*expected: str) -> None:
        async def arrived() -> bool:
            return [s for _id, s in await rows()] == list(expected)

        try:
            await eventually(arrived, 60)
        except AssertionError:
            raise AssertionError(f"{await rows()}\n{agent_log.read_text()[-3000:]}") from None

    async def guard_read() -> bool:
        assert agent.poll() is None, agent_log.read_text()[-2000:]
        found = await pg_fetch(
            pg_dsn,
            "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.site = $1 AND s.tag = 'guard_open'",
            site,
        )
        return int(found[0][0]) > 0

    async def panel_acknowledge(comment: str) -> None:
        # As an operator at the machine's own panel would: the Acknowledge the PLC offers.
        assert await alarm.acknowledge(alarm._event.event.EventId.Value, comment) is None

    hub = HubProcess(hub_yaml, tmp_path / "hub-1.log")
    agent = start_agent(config, agent_log)
    try:
        await wait_ready(port, hub)
        await eventually(guard_read, 60)

        raised_at = time.monotonic()
        await alarm.set(True)
        await states("active")
        print(f"raise → active in PostgreSQL: {time.monotonic() - raised_at:.2f} s")
        # Acknowledged from the dashboard: the hub's API → the agent's command → the PLC's
        # Acknowledge method; the server's new state comes back as an event.
        ((raised_id, _),) = await rows()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            answer = await api.post(
                "/api/v1/events/acknowledge",
                headers=operator,
                json={"site": site, "line": "l1", "machine": "press-01", "id": raised_id,
                      "comment": "seen on the dashboard", "wait": 10},
            )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "done", answer.json()
        assert alarm.acknowledged == ["seen on the dashboard"]
        await states("active", "acked")
        await alarm.set(False)
        await states("active", "acked", "cleared")

        # The agent dies (kill -9); the alarm is raised while it is down: the refresh after
        # its restart reports it, a new occurrence.
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        await alarm.set(True)
        await asyncio.sleep(0.3)
        agent = start_agent(config, agent_log)
        await states("active", "acked", "cleared", "active")

        # The hub dies (SIGKILL); the alarm is acknowledged and cleared meanwhile: the agent
        # keeps the events until a hub receipts them.
        hub.kill()
        await panel_acknowledge("while the hub was down")
        await alarm.set(False)
        await asyncio.sleep(1.0)
        hub.close()
        hub = HubProcess(hub_yaml, tmp_path / "hub-2.log")
        await wait_ready(port, hub)
        await states("active", "acked", "cleared", "active", "acked", "cleared")
        await asyncio.sleep(3)  # republishes, if any, would land by now
        stored = await rows()
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        hub.close()
    assert len(stored) == 6, stored
    # Two occurrences, each with one id through active, acked and cleared.
    ids = [{i for i, _ in stored[:3]}, {i for i, _ in stored[3:]}]
    assert [len(one) for one in ids] == [1, 1], stored
    assert ids[0] != ids[1], stored
