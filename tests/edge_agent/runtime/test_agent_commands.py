"""Commands through a real agent: Mosquitto, `edge-agent run`, a pymodbus device.

A stand-in hub publishes commands on `ms/v1/agents/{id}/cmd` and reads results on `…/cmd/res`;
the device's own registers and its count of write requests are the ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import aiomqtt
import pytest
from mqtt_harness import Broker

import wire
from tests.edge_agent.drivers.modbus.modbus_harness import free_port, tcp_server
from tests.harness.mixer import PROFILE, MixerDevice

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
AGENT = "cmd-pc"


def _config(folder: Path, broker: Broker, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test-mixer.yaml").write_text(PROFILE)
    config = folder / "agent.yaml"
    config.write_text(
        f"agent: {{id: {AGENT}, site: plant, line: l1}}\n"
        f'mqtt: {{url: "{broker.url}", reconnect_min: 100ms, reconnect_max: 1s}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n"
        "  - machine: mixer-01\n"
        "    profile: test-mixer\n"
        f"    modbus: {{host: 127.0.0.1, port: {port}, unit: 1}}\n"
    )
    return config


class Hub:
    """Publishes commands, collects results (a persistent session: none is missed)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.results: list[wire.CommandResult] = []
        self.online = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            if message.topic.matches(wire.cmd_result_topic(AGENT)):
                self.results.append(wire.parse_command_result(str(message.topic), payload)[1])
                async with self.arrived:
                    self.arrived.notify_all()
            elif b'"online"' in payload:
                self.online.set()

    async def send(self, **fields: Any) -> str:
        now = int(time.time() * 1000)
        body = {
            "id": str(uuid.uuid4()), "kind": "write", "issued_by": "test", "issued_at": now,
            "expires_at": now + 30_000, "machine": "mixer-01", **fields,
        }  # fmt: skip
        await self.client.publish(wire.cmd_topic(AGENT), json.dumps(body), qos=1)
        return str(body["id"])

    async def answers(
        self, command_id: str, count: int = 1, within: float = 20
    ) -> list[wire.CommandResult]:
        """The first `count` results for a command, waiting for them."""

        def mine() -> list[wire.CommandResult]:
            return [r for r in self.results if r.id == command_id]

        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(lambda: len(mine()) >= count)
        return mine()

    async def result(self, command_id: str, within: float = 20) -> wire.CommandResult:
        return (await self.answers(command_id, within=within))[0]


@contextlib.asynccontextmanager
async def stand_in_hub(broker: Broker) -> AsyncIterator[Hub]:
    client = aiomqtt.Client("127.0.0.1", broker.port, identifier="hub", clean_session=False)
    async with client:
        await client.subscribe(wire.cmd_result_topic(AGENT), qos=1)
        await client.subscribe(wire.agent_status_topic(AGENT), qos=1)
        hub = Hub(client)
        task = asyncio.create_task(hub.listen())
        try:
            yield hub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _start(config: Path, log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        EDGE_AGENT, "run", str(config), "--log-level", "info", stdout=log, stderr=log
    )


async def _stop(agent: asyncio.subprocess.Process) -> None:
    agent.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        await agent.wait()


async def _registers(port: int) -> list[int]:
    from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415 -- test-only

    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        return list((await client.read_holding_registers(0, count=3, device_id=1)).registers)
    finally:
        client.close()


async def test_commands_write_once_and_are_answered(broker: Broker, tmp_path: Path) -> None:
    device = MixerDevice()
    port = free_port()
    config = _config(tmp_path / "agent", broker, port)
    with (tmp_path / "agent.log").open("w+b") as log:
        async with tcp_server([device.device], port), stand_in_hub(broker) as hub:
            agent = await _start(config, log)
            try:
                async with asyncio.timeout(30):
                    await hub.online.wait()
                first = await hub.send(tag="setpoint", value=42.5)
                done = await hub.result(first)
                assert (done.status, done.previous, done.read_back) == ("done", 10.0, 42.5)
                assert await _registers(port) == [0x422A, 0, 215]  # 42.5 as float32
                assert device.writes == 1

                # Delivered again: answered again, not run again.
                await hub.send(id=first, tag="setpoint", value=42.5)
                again = await hub.answers(first, 2)
                assert again[0] == again[1]
                assert device.writes == 1

                # Refused before the device sees anything.
                for fields, why in (
                    ({"tag": "temp", "value": 30}, "not writable"),
                    ({"tag": "setpoint", "value": 150}, "above setpoint's max 100"),
                    ({"tag": "nope", "value": 1}, "no tag 'nope'"),
                    ({"machine": "other-01", "tag": "start", "value": True}, "no device"),
                ):
                    result = await hub.result(await hub.send(**fields))
                    assert result.status == "refused", fields
                    assert why in result.detail, result.detail
                now = int(time.time() * 1000)
                late = await hub.send(
                    tag="start", value=True, issued_at=now - 60_000, expires_at=now - 1_000
                )
                assert (await hub.result(late)).status == "expired"
                assert device.writes == 1

                # Queued in the broker while the agent is down: run once when it is back.
                await _stop(agent)
                queued = await hub.send(tag="start", value=True)
                agent = await _start(config, log)
                result = await hub.result(queued, within=30)
                assert (result.status, result.previous, result.read_back) == ("done", False, True)
                assert device.writes == 2
                # And never again, after another restart.
                await _stop(agent)
                hub.online.clear()
                agent = await _start(config, log)
                async with asyncio.timeout(30):
                    await hub.online.wait()
                await asyncio.sleep(2)
                assert device.writes == 2
                assert sum(r.id == queued for r in hub.results) == 1
            finally:
                if agent.returncode is None:
                    await _stop(agent)
        log.seek(0)
        text = log.read().decode()
    assert agent.returncode == 0, text[-3000:]
    assert f"command {first} from test: mixer-01.setpoint = 42.5" in text


async def test_a_command_interrupted_by_a_crash_is_never_run_again(tmp_path: Path) -> None:
    from edge_agent.commands import CommandExecutor, CommandJournal  # noqa: PLC0415

    journal = CommandJournal(tmp_path / "commands.db")
    now = int(time.time() * 1000)
    command = wire.Command(
        id=str(uuid.uuid4()), kind="write", issued_by="t", issued_at=now, expires_at=now + 60_000,
        machine="m", tag="x", value=1,
    )  # fmt: skip
    body = wire.encode_command(command)
    assert journal.receive(command.id, body, command.expires_at, now)
    assert journal.start(command.id)  # the agent died here, in the middle of the write
    journal.close()

    class Device:
        writes = 0

        async def write(self, tag: str, value: object) -> tuple[object, object]:
            self.writes += 1
            return None, value

    device = Device()
    journal = CommandJournal(tmp_path / "commands.db")
    executor = CommandExecutor("agent-1", journal, {"m": device})
    task = asyncio.create_task(executor.run())
    try:
        async with asyncio.timeout(10):
            await executor.results_ready.wait()
        # Delivered once more by the broker after the restart: not run either.
        await executor.receive(body)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ((command_id, payload),) = await executor.unsent()
    result = wire.parse_command_result(wire.cmd_result_topic("agent-1"), payload)[1]
    assert (command_id, result.status) == (command.id, "failed")
    assert "not run again" in result.detail
    assert device.writes == 0
    journal.close()


pytestmark = pytest.mark.timeout(180)


async def _edge_agent(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        EDGE_AGENT, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_technician_writes_from_the_line_pc(broker: Broker, tmp_path: Path) -> None:
    device = MixerDevice()
    port = free_port()
    config = str(_config(tmp_path / "agent", broker, port))
    where = ["--device", "mixer-01", "--tag"]
    async with tcp_server([device.device], port):
        code, out, err = await _edge_agent("write", config, "42.5", *where, "setpoint", "--yes")
        assert code == 0, err
        assert "mixer-01.setpoint: 10.0 → 42.5 (wrote 42.5)" in out
        assert await _registers(port) == [0x422A, 0, 215]
        # Asked first without --yes; "no" writes nothing.
        code, out, _ = await _edge_agent("write", config, "50", *where, "setpoint", stdin=b"n\n")
        assert code == 1
        assert "write 50 to setpoint (now 42.5)?" in out
        code, _, err = await _edge_agent("write", config, "30", *where, "temp", "--yes")
        assert code == 1
        assert "refused: temp is not writable" in err
        assert "next: writable: true" in err
        code, _, err = await _edge_agent("write", config, "1", *where, "nope", "--yes")
        assert code == 1
        assert "has no tag 'nope'; its tags: setpoint, temp, start" in err
    assert device.writes == 1
