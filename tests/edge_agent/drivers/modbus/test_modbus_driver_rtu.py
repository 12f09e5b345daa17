"""The driver over Modbus RTU: a pymodbus serial server on one end of a socat pty pair."""

from __future__ import annotations

import asyncio

from modbus_harness import serial_server, sim_device

from edge_agent.drivers.base import Sample
from edge_agent.drivers.health import DeviceHealth
from edge_agent.drivers.modbus.bus import BusPool
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, SerialLink
from edge_agent.drivers.modbus.points import ModbusPoint
from millstream_common.backoff import Backoff
from tests.harness.devicestate import seconds_until_state

POINTS = [
    ModbusPoint("counter", "holding", 0, "uint32", order="CDAB", poll_ms=10),
    ModbusPoint("temp", "input", 0, "float32", poll_ms=10),
    ModbusPoint("running", "coil", 2, "bool", poll_ms=10),
]


def _device(unit: int) -> object:
    # Unit 1 and unit 2 hold different values, so a mixed-up answer cannot go unnoticed.
    return sim_device(
        unit,
        holding={0: unit, 1: 0x0001},  # CDAB: low word first ⇒ 0x0001_0000 + unit
        input={0: 0x41A0 + unit, 1: 0},  # 20.0 (unit 0) + a few ulps per unit
        coils={2: unit % 2},
    )


async def test_two_units_on_one_serial_line_share_one_client_and_bus_lock(
    pty_pair: tuple[str, str],
) -> None:
    server_end, agent_end = pty_pair
    link = SerialLink(agent_end, baudrate=115200)
    pool = BusPool()
    got: dict[str, list[Sample]] = {"one": [], "two": []}

    async def collect(driver: ModbusDriver) -> None:
        async for batch in driver.batches():
            got[driver.device].extend(batch)

    async with serial_server([_device(1), _device(2)], server_end):  # type: ignore[list-item]
        one = ModbusDriver("one", ModbusEndpoint(link, unit=1, timeout_ms=1000), POINTS, pool=pool)
        two = ModbusDriver("two", ModbusEndpoint(link, unit=2, timeout_ms=1000), POINTS, pool=pool)
        assert one.bus is two.bus
        assert one.bus.lock is two.bus.lock
        assert len(pool.buses()) == 1
        await one.connect()
        await two.connect()
        assert one.bus.connects == 1  # the second device found the line already open
        first = {s.tag: s.value for s in await one.read()}
        second = {s.tag: s.value for s in await two.read()}
        # Both poll loops run at once on the one line; the bus lock keeps frames apart.
        tasks = [asyncio.create_task(collect(one)), asyncio.create_task(collect(two))]
        try:
            async with asyncio.timeout(20):
                while min(len(got["one"]), len(got["two"])) < 60:  # noqa: ASYNC110 -- observable state
                    await asyncio.sleep(0.02)
        finally:
            await one.close()
            await two.close()
            await asyncio.gather(*tasks)
    assert pool.buses() == []
    assert first["counter"] == 0x0001_0001
    assert second["counter"] == 0x0001_0002
    assert first["running"] is True
    assert second["running"] is False
    assert first["temp"] != second["temp"]
    for name, expected in (("one", first), ("two", second)):
        assert got[name], name
        for sample in got[name]:
            assert sample.quality == "good"
            assert sample.value == expected[sample.tag], (name, sample)
    assert one.health.errors == 0
    assert two.health.errors == 0


async def test_failing_unit_on_the_line_does_not_stop_its_neighbour(
    pty_pair: tuple[str, str],
) -> None:
    # Unit 9 is configured but not on the line: the server answers it with exception 4 every
    # time. Its poll loop backs off; unit 1 on the same line and bus lock keeps flowing.
    server_end, agent_end = pty_pair
    link = SerialLink(agent_end, baudrate=115200)
    pool = BusPool()
    got: list[Sample] = []

    async def collect(driver: ModbusDriver) -> None:
        async for sample in driver.subscribe():
            got.append(sample)

    async with serial_server([_device(1)], server_end):  # type: ignore[list-item]
        alive = ModbusDriver("alive", ModbusEndpoint(link, unit=1), POINTS, pool=pool)
        failing = ModbusDriver(
            "failing",
            ModbusEndpoint(link, unit=9),
            POINTS,
            pool=pool,
            backoff=Backoff(initial_s=0.05, cap_s=0.2),
        )
        tasks = [asyncio.create_task(collect(alive)), asyncio.create_task(collect(failing))]
        try:
            async with asyncio.timeout(20):
                while failing.health.errors < 3 or len(got) < 30:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            await alive.close()
            await failing.close()
            await asyncio.gather(*tasks)
    assert {s.tag for s in got} == {p.name for p in POINTS}
    assert all(s.quality == "good" for s in got)
    assert alive.health.errors == 0
    assert failing.counters["polls"] == 0
    assert "exception 4" in failing.health.last_error


async def test_a_unit_that_stops_answering_is_offline_within_10s_and_back_within_10s(
    pty_pair: tuple[str, str],
) -> None:
    # The runtime's health with the driver's own threshold (3 × 10 ms poll, at least 1 s + 2 s).
    server_end, agent_end = pty_pair
    link = SerialLink(agent_end, baudrate=115200)
    driver = ModbusDriver("meter", ModbusEndpoint(link, unit=1, timeout_ms=1000), POINTS)
    health = DeviceHealth("meter", driver.offline_after_s)
    driver.report_to(health)
    assert driver.offline_after_s == 3.0

    async def drain() -> None:
        async for _ in driver.batches():
            pass

    async with serial_server([_device(1)], server_end):  # type: ignore[list-item]
        await driver.connect()
        consumer = asyncio.create_task(drain())
        await seconds_until_state(health, "online")
    try:
        offline_after = await seconds_until_state(
            health, "offline"
        )  # the server is gone: nothing replies
        why = health.why()
        assert why is not None
        assert f"no reply from unit 1 on {agent_end}" in why, why
        async with serial_server([_device(1)], server_end):  # type: ignore[list-item]
            online_after = await seconds_until_state(health, "online")
    finally:
        await driver.close()
        await consumer
    assert offline_after <= 10.0
    assert online_after <= 10.0
