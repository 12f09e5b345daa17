"""The agent's side of `acknowledge` commands: the executor with a journal on disk and a driver
that implements `AcknowledgingDriver` (the OPC-UA driver's own tests acknowledge on a server)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import wire
from edge_agent.commands import CommandExecutor, CommandJournal
from edge_agent.drivers.base import AcknowledgingDriver, Sample
from edge_agent.errors import DeviceUnavailable, WriteFailed, WriteRefused

if TYPE_CHECKING:
    from edge_agent.drivers.health import DeviceHealth

pytestmark = pytest.mark.asyncio(loop_scope="session")

AGENT = "agent-1"
ACTIVE = "c7f3a90b12e4"  # an active, unacknowledged condition's occurrence
LOCKED = "0d11c3aa"  # the server refuses its acknowledgement


class Press:
    """A device with two alarm conditions, as the OPC-UA driver keeps them."""

    def __init__(self) -> None:
        self.acknowledged: list[tuple[str, str]] = []
        self.connected = True

    async def connect(self) -> None:
        self.connected = True

    async def read(self) -> list[Sample]:
        return []

    async def close(self) -> None:
        self.connected = False

    @property
    def offline_after_s(self) -> float:
        return 10.0

    def report_to(self, health: DeviceHealth) -> None:
        pass

    async def acknowledge(self, event: str, comment: str) -> None:
        if not self.connected:
            raise DeviceUnavailable("press-01: not connected")
        if event == LOCKED:
            raise WriteFailed("the server answered BadConditionBranchAlreadyAcked")
        if event != ACTIVE or any(done == event for done, _ in self.acknowledged):
            raise WriteRefused(f"press-01 has no unacknowledged condition with event {event}")
        self.acknowledged.append((event, comment))


class Oven:
    """A device whose protocol has no alarm conditions (a Modbus machine's events are bits)."""

    async def connect(self) -> None: ...

    async def read(self) -> list[Sample]:
        return []

    async def close(self) -> None: ...

    @property
    def offline_after_s(self) -> float:
        return 10.0

    def report_to(self, health: DeviceHealth) -> None:
        pass


class Agent:
    def __init__(self, executor: CommandExecutor) -> None:
        self.executor = executor

    async def send(self, **fields: Any) -> wire.CommandResult:
        """Deliver an acknowledge of `press-01` (as the broker does) and await its result."""
        now = int(time.time() * 1000)
        command = wire.Command(
            id=str(uuid.uuid4()), kind="acknowledge", issued_by="ann", issued_at=now,
            expires_at=now + 60_000, **{"machine": "press-01", **fields},
        )  # fmt: skip
        await self.executor.receive(wire.encode_command(command))
        async with asyncio.timeout(10):
            while True:
                self.executor.results_ready.clear()
                for command_id, payload in await self.executor.unsent():
                    if command_id == command.id:
                        await self.executor.sent(command_id)
                        topic = wire.cmd_result_topic(AGENT)
                        return wire.parse_command_result(topic, payload)[1]
                await self.executor.results_ready.wait()


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, Press]]:
    press = Press()
    journal = CommandJournal(tmp_path / "commands.db")
    executor = CommandExecutor(AGENT, journal, {"press-01": press, "oven-01": Oven()})
    task = asyncio.create_task(executor.run(), name="executor")
    try:
        yield Agent(executor), press
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        journal.close()


async def test_only_a_driver_with_acknowledge_is_an_acknowledging_driver() -> None:
    assert isinstance(Press(), AcknowledgingDriver)
    assert not isinstance(Oven(), AcknowledgingDriver)


async def test_an_acknowledge_reaches_the_driver_once_and_is_answered_done(
    agent: tuple[Agent, Press],
) -> None:
    hub, press = agent
    result = await hub.send(event=ACTIVE, comment="guard closed, restarting")
    assert (result.status, result.detail) == ("done", f"acknowledged press-01 event {ACTIVE}")
    assert (result.previous, result.read_back, result.outputs) == (None, None, None)
    assert press.acknowledged == [(ACTIVE, "guard closed, restarting")]


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"event": "ffee01"}, "refused", "no unacknowledged condition with event ffee01"),
        ({"event": LOCKED}, "failed", f"press-01 event {LOCKED}: the server answered Bad"),
        ({"machine": "oven-01", "event": ACTIVE}, "refused", "oven-01: its protocol cannot "
         "acknowledge yet"),
        ({"machine": "mill-01", "event": ACTIVE}, "refused", "this agent has no device 'mill-01'"),
    ],
)  # fmt: skip
async def test_an_acknowledge_the_device_cannot_take_says_why(
    agent: tuple[Agent, Press], fields: dict[str, str], status: str, words: str
) -> None:
    hub, press = agent
    result = await hub.send(**fields)
    assert result.status == status
    assert words in result.detail, result.detail
    assert press.acknowledged == []


async def test_an_acknowledge_while_the_device_is_away_fails_and_names_the_event(
    agent: tuple[Agent, Press],
) -> None:
    hub, press = agent
    await press.close()
    result = await hub.send(event=ACTIVE)
    assert result.status == "failed"
    assert result.detail == f"press-01 event {ACTIVE}: press-01: not connected"
