"""A write from the API to a machine and back: `millstream-hub serve` on PostgreSQL and
Mosquitto, `edge-agent run`, a pymodbus device whose registers are the ground truth."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asyncua import ua

from tests.edge_agent.drivers.modbus.modbus_harness import tcp_server
from tests.harness import free_port
from tests.harness.hubproc import HUB, hub_cli
from tests.harness.mixer import PROFILE, MixerDevice

pytestmark = pytest.mark.asyncio(loop_scope="session")

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))


async def _until(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_an_operator_writes_a_setpoint_and_the_audit_log_keeps_it(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    http = free_port()
    hub_config = tmp_path / "hub.yaml"
    group = uuid.uuid4().hex[:8]
    hub_config.write_text(
        f"mqtt: {{url: '{mosquitto.url}', client_id: hub-{group}, share_group: g{group}}}\n"
        f"storage: '{pg_dsn}'\nhttp: {{host: 127.0.0.1, port: {http}}}\nflush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(hub_config, "migrate")
    keys = {
        role: hub_cli(hub_config, "users", "api-key", "add", f"{role}-key", "--role", role).strip()
        for role in ("viewer", "operator", "admin")
    }
    site, agent_id, modbus = f"s{group}", f"pc-{group}", free_port()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "test-mixer.yaml").write_text(PROFILE)
    (agent_dir / "agent.yaml").write_text(
        f"agent: {{id: {agent_id}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{mosquitto.url}", reconnect_min: 100ms}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n  - machine: mixer-01\n    profile: test-mixer\n"
        f"    modbus: {{host: 127.0.0.1, port: {modbus}, unit: 1}}\n"
    )
    mixer = MixerDevice()
    with (tmp_path / "hub.log").open("ab") as hub_log, (tmp_path / "agent.log").open("ab") as log:
        hub = await asyncio.create_subprocess_exec(
            HUB, "serve", "--config", str(hub_config), stderr=hub_log
        )
        agent = await asyncio.create_subprocess_exec(
            EDGE_AGENT, "run", str(agent_dir / "agent.yaml"), stderr=log
        )
        try:
            async with (
                tcp_server([mixer.device], modbus),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}/api/v1", timeout=30) as api,
            ):

                def auth(role: str) -> dict[str, str]:
                    return {"Authorization": f"Bearer {keys[role]}"}

                async def agent_known() -> bool:
                    conn = await asyncpg.connect(pg_dsn)
                    try:
                        return bool(
                            await conn.fetchval(
                                "SELECT count(*) FROM machine_agents WHERE agent_id = $1",
                                agent_id,
                            )
                        )
                    finally:
                        await conn.close()

                await _until(agent_known, 60)

                # The profile's writable tags reach the hub in the machine's meta: the
                # dashboard offers a write control on exactly these.
                async def series() -> dict[str, Any]:
                    r = await api.get(f"/series?site={site}", headers=auth("viewer"))
                    return {s["tag"]: s for s in r.json()}

                async def meta_stored() -> bool:
                    return "setpoint" in await series() and "temp" in await series()

                await _until(meta_stored)
                tags = await series()
                assert (tags["setpoint"]["writable"], tags["setpoint"]["write_min"],
                        tags["setpoint"]["write_max"]) == (True, 0.0, 100.0)  # fmt: skip
                assert tags["temp"]["writable"] is False
                url = f"/machines/{site}/l1/mixer-01/tags/setpoint/write"
                viewer = await api.post(url, json={"value": 42.5}, headers=auth("viewer"))
                assert viewer.status_code == 403
                assert mixer.writes == 0

                r = await api.post(url, json={"value": 42.5}, headers=auth("operator"))
                assert r.status_code == 200, r.text
                done = r.json()
                assert (done["status"], done["previous"], done["read_back"]) == ("done", 10.0, 42.5)
                assert done["issued_by"] == "key:operator-key"  # an API key, by name
                assert mixer.writes == 1

                r = await api.post(
                    f"/machines/{site}/l1/mixer-01/tags/temp/write",
                    json={"value": 30},
                    headers=auth("operator"),
                )
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "refused"
                assert "not writable" in r.json()["detail"]
                r = await api.post(
                    f"/machines/{site}/l1/ghost-01/tags/x/write", json={"value": 1},
                    headers=auth("operator"),
                )  # fmt: skip
                assert r.status_code == 404
                assert "no agent has reported polling" in r.json()["detail"]
                r = await api.post(url, json={"value": "a\u0000b"}, headers=auth("operator"))
                assert r.status_code == 422

                # The audit log: admins only; who, what, before, after, result.
                assert (await api.get("/commands", headers=auth("operator"))).status_code == 403
                log_rows = (await api.get("/commands", headers=auth("admin"))).json()
                assert [(c["tag"], c["status"]) for c in log_rows] == [
                    ("temp", "refused"),
                    ("setpoint", "done"),
                ]
                assert log_rows[1]["value"] == 42.5
                one = await api.get(f"/commands/{done['id']}", headers=auth("operator"))
                assert one.json() == log_rows[1]
                assert mixer.writes == 1
        finally:
            for proc in (agent, hub):
                proc.terminate()
                async with asyncio.timeout(20):
                    await proc.wait()


async def test_an_operator_calls_a_declared_opcua_method(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    from tests.edge_agent.drivers.opcua.opcua_harness import (  # noqa: PLC0415
        CncServer,
        make_server_cert,
    )

    http = free_port()
    hub_config = tmp_path / "hub.yaml"
    group = uuid.uuid4().hex[:8]
    hub_config.write_text(
        f"mqtt: {{url: '{mosquitto.url}', client_id: hub-{group}, share_group: g{group}}}\n"
        f"storage: '{pg_dsn}'\nhttp: {{host: 127.0.0.1, port: {http}}}\nflush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
    )
    hub_cli(hub_config, "migrate")
    key = hub_cli(hub_config, "users", "api-key", "add", "op", "--role", "operator").strip()
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
    site, agent_id = f"s{group}", f"pc-{group}"
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "test-cnc.yaml").write_text(
        "profile: test-cnc\nvendor: Millstream tests\nmodel: Mill\nprotocol: opcua\n"
        "source: written for this test\ntags:\n"
        '  - {name: spindle_speed, node: "ns=2;s=Spindle.Speed"}\n'
        "methods:\n"
        '  - {name: reset_counter, object: "ns=2;s=Machine", method: "ns=2;s=Machine.Reset"}\n'
    )
    (agent_dir / "agent.yaml").write_text(
        f"agent: {{id: {agent_id}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{mosquitto.url}", reconnect_min: 100ms}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n  - machine: mill-01\n    profile: test-cnc\n"
        f'    opcua: {{url: "{cnc.url}", security: None}}\n'
    )
    with (tmp_path / "hub.log").open("ab") as hub_log, (tmp_path / "agent.log").open("ab") as log:
        hub = await asyncio.create_subprocess_exec(
            HUB, "serve", "--config", str(hub_config), stderr=hub_log
        )
        agent = await asyncio.create_subprocess_exec(
            EDGE_AGENT, "run", str(agent_dir / "agent.yaml"), stderr=log
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{http}/api/v1", timeout=30,
                headers={"Authorization": f"Bearer {key}"},
            ) as api:  # fmt: skip

                async def agent_known() -> bool:
                    conn = await asyncpg.connect(pg_dsn)
                    try:
                        return bool(
                            await conn.fetchval(
                                "SELECT count(*) FROM machine_agents WHERE agent_id = $1",
                                agent_id,
                            )
                        )
                    finally:
                        await conn.close()

                await _until(agent_known, 60)
                url = f"/machines/{site}/l1/mill-01/methods/reset_counter/call"
                r = await api.post(url, json={"args": [5]})
                assert r.status_code == 200, r.text
                done = r.json()
                assert (done["kind"], done["status"], done["read_back"]) == (
                    "call", "done", ["reset to 5"]
                )  # fmt: skip
                assert (done["tag"], done["value"]) == ("reset_counter", [5])
                assert resets == [5]
                r = await api.post(
                    f"/machines/{site}/l1/mill-01/methods/reboot/call", json={"args": []}
                )
                assert r.json()["status"] == "refused"
                assert "declares no method 'reboot'" in r.json()["detail"]
                assert resets == [5]
        finally:
            for proc in (agent, hub):
                proc.terminate()
                async with asyncio.timeout(20):
                    await proc.wait()
            await cnc.stop()
