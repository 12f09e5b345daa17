"""A Modbus alarm bit toggled on a real server yields exactly one event per edge, end to end:
pymodbus server (the simulator's Modbus device) → `edge-agent run` (profile `event:` tags,
store-and-forward) → Mosquitto → hub → PostgreSQL — and across an agent kill -9, an edge that
happened while it was down is reported once when it reads the bit again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hubtest import eventually, hub_config, migrate, now_ms, pg_fetch, running_hub

from edge_agent.simulators.faults import FaultBook
from edge_agent.simulators.modbus_server import ModbusDevice
from edge_agent.simulators.tags import ModbusTag

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
DWELL_S = 0.8  # each state is held for several 100 ms polls, even on a loaded machine

PROFILE = """\
profile: press-alarms
vendor: Millstream tests
model: a press with a guard door switch and a fault code
protocol: modbus
source: this test
defaults: {poll_ms: 100}
tags:
  - name: guard_open
    table: coil
    address: 0
    type: bool
    event: {on: rising, severity: 700, message: Guard door open}
  - name: fault
    table: holding
    address: 0
    type: uint16
    event: {on: change, severity: 400, type: fault, message: {1: Overload, 2: Jam}}
"""


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([EDGE_AGENT, "run", str(config)], stdout=out, stderr=out)


async def test_one_event_per_edge_across_an_agent_kill(
    mosquitto_factory: Any, pg_dsn: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=False)
    await migrate(pg_dsn)
    site = f"ae{now_ms() % 10**9}"
    tags = (ModbusTag("guard_open", "coil", 0, "bool"), ModbusTag("fault", "holding", 0, "uint16"))
    device = ModbusDevice("press-01", tags, FaultBook())
    values: dict[str, Any] = {"guard_open": False, "fault": 0}
    device.image.update(values)
    await device.start("127.0.0.1", 0)
    (tmp_path / "press-alarms.yaml").write_text(PROFILE)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{id: pc-{site}, site: {site}, line: l1}}\n"
        f'mqtt: {{url: "{broker.url}", receipt_timeout: 2s}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n"
        "  - machine: press-01\n"
        "    profile: ./press-alarms.yaml\n"
        f"    modbus: {{host: 127.0.0.1, port: {device.port}, unit: 1}}\n"
    )
    log = tmp_path / "agent.log"

    async def hold(**change: Any) -> None:
        values.update(change)
        device.image.update(values)
        await asyncio.sleep(DWELL_S)

    async def events() -> list[tuple[Any, ...]]:
        rows = await pg_fetch(
            pg_dsn,
            "SELECT source, message, fields FROM machine_events WHERE site = $1 ORDER BY ts",
            site,
        )
        return [tuple(r) for r in rows]

    async def guard_read() -> bool:
        rows = await pg_fetch(
            pg_dsn,
            "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.site = $1 AND s.tag = 'guard_open'",
            site,
        )
        return int(rows[0][0]) > 0

    agent = start_agent(config, log)
    try:
        async with running_hub(hub_config(broker.url, pg_dsn)):
            await eventually(guard_read, 60)
            for _ in range(3):
                await hold(guard_open=True)
                await hold(guard_open=False)
            await hold(fault=2)
            await hold(fault=1)

            async def five() -> bool:
                return len(await events()) == 5

            await eventually(five, 30)
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            values["guard_open"] = True  # set while the agent is down
            device.image.update(values)
            agent = start_agent(config, log)

            async def six() -> bool:
                return len(await events()) == 6

            await eventually(six, 60)
            await asyncio.sleep(3)  # republishes, if any, would land by now
            stored = await events()
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        await device.stop()
    assert [(s, m) for s, m, _ in stored] == [
        ("guard_open", "Guard door open"),
        ("guard_open", "Guard door open"),
        ("guard_open", "Guard door open"),
        ("fault", "Jam"),
        ("fault", "Overload"),
        ("guard_open", "Guard door open"),  # the edge while the agent was down
    ], log.read_text()[-3000:]
    assert stored[3][2] == '{"value":2,"previous":0}'
