"""Writes through the driver against a real pymodbus server: every type and order lands in the
device's registers as the device's own encoding has it, with the function code Modbus names
for it, and is read back; what the profile does not allow never reaches the device."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from modbus_harness import catalog, reference_registers, sim_device, tcp_server
from pymodbus.client import AsyncModbusTcpClient

from edge_agent.drivers.modbus.bus import RequestRejected
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, TcpLink
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.errors import WriteRefused

# New values, all different from the catalogue's (modbus_harness.EXPECTED).
NEW: dict[str, int | float] = {
    "int16": 4321,
    "uint16": 65000,
    "int32": 987654321,
    "uint32": 4000000000,
    "int64": 1234567890123,
    "uint64": 18000000000000000000,
    "float32": -17.25,
    "float64": 98765.4321,
}


class Requests:
    """The function codes of the requests the device served (pymodbus action hook; pymodbus
    calls it twice for a write, so tests compare the set of codes)."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    async def action(self, function_code: int, *_args: Any) -> None:
        self.codes.append(function_code)

    def writes(self) -> set[int]:
        return set(self.codes) - {1, 3}  # without the reads before and after


def writable(point: ModbusPoint, **limits: float) -> ModbusPoint:
    return dataclasses.replace(point, writable=True, **limits)


async def _holding(port: int, address: int, count: int) -> list[int]:
    """Registers as the device holds them, read by a client that is not ours."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        response = await client.read_holding_registers(address, count=count, device_id=1)
        return list(response.registers)
    finally:
        client.close()


async def test_every_type_and_order_is_written_and_read_back() -> None:
    cases, tables = catalog()
    requests = Requests()
    device = sim_device(1, holding=tables["holding"], input=tables["input"],
                        coils=tables["coil"], discrete=tables["discrete"],
                        action=requests.action)  # fmt: skip
    points = [writable(p) if p.table in ("holding", "coil") else p for p, _ in cases]
    cases = [(p, before) for p, (_, before) in zip(points, cases, strict=True)]
    async with tcp_server([device]) as port:
        driver = ModbusDriver("plc", ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1), points)
        async with driver:
            for point, before in cases:
                if point.table != "holding" or point.type in ("bool", "string"):
                    continue
                if point.scale != 1.0:
                    continue
                new = NEW[point.type]
                requests.codes.clear()
                previous, read_back = await driver.write(point.name, new)
                assert previous == pytest.approx(before), point
                assert read_back == pytest.approx(new), point
                expected = reference_registers(new, point.type, point.order)
                assert await _holding(port, point.address, len(expected)) == expected, point
                # FC6 for one register, FC16 for several; reads around it are FC3.
                assert requests.writes() == ({6} if len(expected) == 1 else {16}), point
            # Scale and offset undone: 25.0 °C = raw (25 + 40) / 0.1 = 650.
            assert await driver.write("scaled", 25.0) == (pytest.approx(21.5), 25.0)
            assert await _holding(port, 102, 1) == [650]
            # One bit of a status word: the others stay as they were (0x8008 → 0x8018).
            requests.codes.clear()
            assert await driver.write("status_bit4", True) == (False, True)
            assert await _holding(port, 100, 1) == [0x8018]
            assert requests.writes() == {6}
            # A coil: FC5.
            requests.codes.clear()
            assert await driver.write("coil1", True) == (False, True)
            assert requests.writes() == {5}


async def test_strings_are_written_in_their_byte_order() -> None:
    point = ModbusPoint("recipe", "holding", 10, "string", length=4, order="BADC", writable=True)
    device = sim_device(1, holding=dict.fromkeys(range(10, 14), 0))
    async with tcp_server([device]) as port:
        driver = ModbusDriver("plc", ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1), [point])
        async with driver:
            assert await driver.write("recipe", "AB-7") == ("", "AB-7")
            # BADC: the first character in each register's low byte.
            assert await _holding(port, 10, 4) == [ord("B") << 8 | ord("A"),
                                                   ord("7") << 8 | ord("-"), 0, 0]  # fmt: skip
            with pytest.raises(WriteRefused, match="needs more than 4 registers"):
                await driver.write("recipe", "TOO-LONG-NAME")


async def test_what_the_profile_forbids_never_reaches_the_device() -> None:
    requests = Requests()
    points = [
        ModbusPoint("setpoint", "holding", 0, "uint16", scale=0.1, writable=True, min=0, max=80),
        ModbusPoint("count", "holding", 1, "uint16", writable=True),
        ModbusPoint("temp", "holding", 2, "int16"),
        ModbusPoint("run", "coil", 0, "bool", writable=True),
    ]
    device = sim_device(1, holding={0: 100, 1: 7, 2: 5}, coils={0: 0}, action=requests.action)
    async with tcp_server([device]) as port:
        driver = ModbusDriver("plc", ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1), points)
        async with driver:
            refusals = [
                ("temp", 6, "temp is not writable"),
                ("setpoint", 80.5, "80.5 is above setpoint's max 80"),
                ("setpoint", -1, "-1 is below setpoint's min 0"),
                ("setpoint", "fast", "setpoint takes a number"),
                ("setpoint", True, "setpoint takes a number"),
                ("count", 70000, "outside uint16 range"),
                ("count", 2.5, "uint16 cannot hold 2.5"),
                ("run", "yes", "run takes true or false"),
                ("nothing", 1, "plc has no tag 'nothing'"),
            ]
            requests.codes.clear()
            for tag, value, why in refusals:
                with pytest.raises(WriteRefused, match=why):
                    await driver.write(tag, value)
            assert requests.codes == []  # not even a read
            assert await _holding(port, 0, 3) == [100, 7, 5]
            # Within the limits, the same tag writes fine.
            assert await driver.write("setpoint", 80) == (10.0, 80.0)


async def test_a_write_the_device_refuses_is_its_refusal() -> None:
    # Register 1 does not exist: the device answers exception 2 to the write.
    point = ModbusPoint("ghost", "holding", 1, "uint16", writable=True)
    device = sim_device(1, holding={0: 1, 2: 3})
    async with tcp_server([device]) as port:
        driver = ModbusDriver("plc", ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1), [point])
        async with driver:
            with pytest.raises(RequestRejected, match="ILLEGAL DATA ADDRESS"):
                await driver.write("ghost", 5)
