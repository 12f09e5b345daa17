"""A PLC string padded with NULs reaches PostgreSQL, and so does every reading around it.

Issue 18, case 2: the real `edge-agent run` reads an OPC-UA server whose STRING is NUL-padded
(as S7 strings behind OPC-UA are), publishes through Mosquitto to the real hub on PostgreSQL.
Before, the hub's database refused the whole batch and receipted it as a dead letter, so the
agent deleted readings of every tag in it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from hubtest import eventually, hub_config, migrate, pg_fetch, running_hub

from tests.harness import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
NS_URI = "urn:millstream:test:plc"

PROFILE = """\
profile: plc-test
vendor: Test
model: PLC with a padded STRING
protocol: opcua
source: test fixture
defaults: {mode: subscribe, sampling_ms: 100}
tags:
  - {name: program, browse_path: "/Objects/2:PLC/2:Program"}
  - {name: temp, browse_path: "/Objects/2:PLC/2:Temp", unit: "°C"}
  - {name: count, browse_path: "/Objects/2:PLC/2:Count"}
"""


@pytest.fixture
async def plc() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An OPC-UA server (no security) whose values change every 100 ms."""
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NS_URI)
    obj = await server.nodes.objects.add_object(ua.NodeId("PLC", ns), ua.QualifiedName("PLC", ns))
    nodes = {
        "program": await obj.add_variable(
            ua.NodeId("PLC.Program", ns), ua.QualifiedName("Program", ns), "O1000\x00\x00\x00"
        ),
        "temp": await obj.add_variable(
            ua.NodeId("PLC.Temp", ns), ua.QualifiedName("Temp", ns), 20.0
        ),
        "count": await obj.add_variable(
            ua.NodeId("PLC.Count", ns), ua.QualifiedName("Count", ns), 0
        ),
    }
    await server.start()

    async def tick() -> None:
        i = 0
        while True:
            i += 1
            await nodes["program"].write_value(f"O{1000 + i}\x00\x00\x00", ua.VariantType.String)
            await nodes["temp"].write_value(20.0 + i / 10, ua.VariantType.Double)
            await nodes["count"].write_value(i, ua.VariantType.Int64)
            await asyncio.sleep(0.1)

    ticker = asyncio.create_task(tick())
    try:
        yield url, nodes
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await server.stop()


async def test_a_nul_padded_plc_string_loses_nothing(
    plc: tuple[str, dict[str, Any]], mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    url, _ = plc
    await migrate(pg_dsn)
    (tmp_path / "plc-test.yaml").write_text(PROFILE, encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: {id: plc-pc, site: plant-n, line: l1}\n"
        f"mqtt: {{url: '{mosquitto.url}', receipt_timeout: 5s}}\n"
        "buffer: {path: ./buffer.db}\n"
        "state_dir: ./state\n"
        "devices:\n"
        "  - machine: plc-01\n"
        "    profile: ./plc-test.yaml\n"
        f"    opcua: {{url: '{url}', security: None}}\n",
        encoding="utf-8",
    )
    async with running_hub(hub_config(mosquitto.url, pg_dsn, flush_ms=50)):
        with (tmp_path / "agent.log").open("wb") as log:
            agent = await asyncio.create_subprocess_exec(
                EDGE_AGENT, "run", str(config), stdout=log, stderr=log, cwd=tmp_path
            )
        try:

            async def strings_stored() -> bool:
                rows = await pg_fetch(
                    pg_dsn,
                    "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                    " WHERE s.tag = 'program'",
                )
                return int(rows[0][0]) >= 20

            await eventually(strings_stored, 60)
        finally:
            agent.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await agent.wait()
        log_text = (tmp_path / "agent.log").read_text(errors="replace")
        assert agent.returncode == 0, log_text[-3000:]
    texts = await pg_fetch(
        pg_dsn,
        "SELECT r.value_text FROM readings r JOIN series s ON s.id = r.series_id"
        " WHERE s.tag = 'program'",
    )
    # Stored as the PLC means it: the C string up to its first NUL.
    assert {t[0] for t in texts} <= {f"O{1000 + i}" for i in range(10_000)}
    tags = await pg_fetch(
        pg_dsn,
        "SELECT s.tag, count(*) FROM readings r JOIN series s ON s.id = r.series_id GROUP BY 1",
    )
    counts = {t: int(n) for t, n in tags}
    assert counts["temp"] >= 20
    assert counts["count"] >= 20
    assert await pg_fetch(pg_dsn, "SELECT reason, message FROM dead_letters") == []
