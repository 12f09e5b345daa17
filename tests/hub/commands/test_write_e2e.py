"""Commands from the API to a machine and back: `millstream-hub serve` on PostgreSQL and
Mosquitto, `edge-agent run`, and a real device (pymodbus, asyncua) as the ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asyncua import ua

from tests.edge_agent.drivers.modbus.modbus_harness import tcp_server
from tests.edge_agent.drivers.opcua.opcua_harness import CncServer, make_server_cert
from tests.harness import free_port
from tests.harness.hubproc import HUB, hub_cli
from tests.harness.mixer import PROFILE, MixerDevice

pytestmark = pytest.mark.asyncio(loop_scope="session")

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
ROLES = ("viewer", "operator", "admin")
CNC_PROFILE = """
profile: test-cnc
vendor: Millstream tests
model: Mill
protocol: opcua
source: written for this test
tags:
  - {name: spindle_speed, node: "ns=2;s=Spindle.Speed"}
methods:
  - {name: reset_counter, object: "ns=2;s=Machine", method: "ns=2;s=Machine.Reset"}
"""


async def _until(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


@dataclass
class Line:
    """A hub and one agent polling one machine, the machine known to the hub; the API as
    each role (an API key per role)."""

    site: str
    api: dict[str, httpx.AsyncClient]
    # The agent process, replaced by `kill_and_restart_agent` (terminated at the end).
    agent: asyncio.subprocess.Process
    start_agent: Any

    async def kill_and_restart_agent(self) -> None:
        """kill -9 the agent (no clean stop at all) and start it again."""
        self.agent.kill()
        await self.agent.wait()
        self.agent = await self.start_agent()


async def _agent_known(dsn: str, agent_id: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM machine_agents WHERE agent_id = $1", agent_id
        )
        return bool(count)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_line(
    tmp_path: Path, mosquitto: Any, dsn: str, profile: tuple[str, str], device: str
) -> AsyncIterator[Line]:
    """`profile`: (file name, YAML); `device`: the agent config's entry for the machine."""
    http, group = free_port(), uuid.uuid4().hex[:8]
    hub_config = tmp_path / "hub.yaml"
    hub_config.write_text(
        f"mqtt: {{url: '{mosquitto.url}', client_id: hub-{group}, share_group: g{group}}}\n"
        f"storage: '{dsn}'\nhttp: {{host: 127.0.0.1, port: {http}}}\nflush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(hub_config, "migrate")
    keys = {
        role: hub_cli(hub_config, "users", "api-key", "add", f"{role}-key", "--role", role).strip()
        for role in ROLES
    }
    site, agent_id = f"s{group}", f"pc-{group}"
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / profile[0]).write_text(profile[1])
    (agent_dir / "agent.yaml").write_text(
        f"agent: {{id: {agent_id}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{mosquitto.url}", reconnect_min: 100ms}}\n'
        f"buffer: {{path: ./buffer.db}}\ndevices:\n{device}"
    )
    base = f"http://127.0.0.1:{http}/api/v1"
    with (tmp_path / "hub.log").open("ab") as hub_log, (tmp_path / "agent.log").open("ab") as log:
        hub = await asyncio.create_subprocess_exec(
            HUB, "serve", "--config", str(hub_config), stderr=hub_log
        )

        async def start_agent() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                EDGE_AGENT, "run", str(agent_dir / "agent.yaml"), stderr=log
            )

        line = Line(site, {}, await start_agent(), start_agent)
        try:
            async with contextlib.AsyncExitStack() as stack:
                api = {
                    role: await stack.enter_async_context(
                        httpx.AsyncClient(
                            base_url=base, timeout=30,
                            headers={"Authorization": f"Bearer {keys[role]}"},
                        )
                    )
                    for role in ROLES
                }  # fmt: skip
                await _until(lambda: _agent_known(dsn, agent_id), 60)
                line.api = api
                yield line
        finally:
            for proc in (line.agent, hub):
                proc.terminate()
                async with asyncio.timeout(20):
                    await proc.wait()


async def test_an_operator_writes_a_setpoint_and_the_audit_log_keeps_it(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    mixer, modbus = MixerDevice(), free_port()
    device = (
        "  - machine: mixer-01\n    profile: test-mixer\n"
        f"    modbus: {{host: 127.0.0.1, port: {modbus}, unit: 1}}\n"
    )
    async with (
        tcp_server([mixer.device], modbus),
        running_line(tmp_path, mosquitto, pg_dsn, ("test-mixer.yaml", PROFILE), device) as line,
    ):
        site, api = line.site, line.api

        # The profile's writable tags reach the hub in the machine's meta: the dashboard
        # offers a write control on exactly these.
        async def series() -> dict[str, Any]:
            r = await api["viewer"].get(f"/series?site={site}")
            return {s["tag"]: s for s in r.json()}

        async def meta_stored() -> bool:
            return {"setpoint", "temp"} <= set(await series())

        await _until(meta_stored)
        tags = await series()
        setpoint = tags["setpoint"]
        assert (setpoint["writable"], setpoint["write_min"], setpoint["write_max"]) == (
            True, 0.0, 100.0
        )  # fmt: skip
        assert tags["temp"]["writable"] is False

        url = f"/machines/{site}/l1/mixer-01/tags/setpoint/write"
        assert (await api["viewer"].post(url, json={"value": 42.5})).status_code == 403
        assert mixer.writes == 0
        r = await api["operator"].post(url, json={"value": 42.5})
        assert r.status_code == 200, r.text
        done = r.json()
        assert (done["status"], done["previous"], done["read_back"]) == ("done", 10.0, 42.5)
        assert done["issued_by"] == "key:operator-key"  # an API key, by name
        assert mixer.writes == 1

        r = await api["operator"].post(
            f"/machines/{site}/l1/mixer-01/tags/temp/write", json={"value": 30}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "refused"
        assert "not writable" in r.json()["detail"]
        r = await api["operator"].post(
            f"/machines/{site}/l1/ghost-01/tags/x/write", json={"value": 1}
        )
        assert r.status_code == 404
        assert "no agent has reported polling" in r.json()["detail"]
        assert (await api["operator"].post(url, json={"value": "a\u0000b"})).status_code == 422

        # The audit log: admins only; who, what, before, after, result.
        assert (await api["operator"].get("/commands")).status_code == 403
        rows = (await api["admin"].get("/commands")).json()
        assert [(c["tag"], c["status"]) for c in rows] == [
            ("temp", "refused"),
            ("setpoint", "done"),
        ]
        assert rows[1]["value"] == 42.5
        one = await api["operator"].get(f"/commands/{done['id']}")
        assert one.json() == rows[1]
        assert mixer.writes == 1


async def test_an_operator_calls_a_declared_opcua_method(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    cnc = CncServer(port=free_port(), cert=make_server_cert(tmp_path / "pki", "cnc"))
    await cnc.start()
    assert cnc.server is not None
    machine = await cnc.server.nodes.objects.get_child([f"{cnc.ns}:Machine"])
    resets: list[int] = []

    async def reset(_parent: object, count: ua.Variant) -> list[ua.Variant]:
        resets.append(count.Value)
        return [ua.Variant(f"reset to {count.Value}", ua.VariantType.String)]

    await machine.add_method(
        ua.NodeId("Machine.Reset", cnc.ns), ua.QualifiedName("Reset", cnc.ns), reset,
        [ua.VariantType.Int32], [ua.VariantType.String],
    )  # fmt: skip
    device = (
        "  - machine: mill-01\n    profile: test-cnc\n"
        f'    opcua: {{url: "{cnc.url}", security: None}}\n'
    )
    try:
        async with running_line(
            tmp_path, mosquitto, pg_dsn, ("test-cnc.yaml", CNC_PROFILE), device
        ) as line:
            operator = line.api["operator"]
            url = f"/machines/{line.site}/l1/mill-01/methods/reset_counter/call"
            r = await operator.post(url, json={"args": [5]})
            assert r.status_code == 200, r.text
            done = r.json()
            assert (done["kind"], done["status"], done["read_back"]) == (
                "call", "done", ["reset to 5"]
            )  # fmt: skip
            assert (done["tag"], done["value"]) == ("reset_counter", [5])
            assert resets == [5]
            r = await operator.post(
                f"/machines/{line.site}/l1/mill-01/methods/reboot/call", json={"args": []}
            )
            assert r.json()["status"] == "refused"
            assert "declares no method 'reboot'" in r.json()["detail"]
            assert resets == [5]
    finally:
        await cnc.stop()
