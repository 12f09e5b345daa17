"""The driver against libmodbus, a Modbus server implementation independent of pymodbus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from modbus_harness import ORDERS, catalog

from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, TcpLink
from edge_agent.drivers.modbus.points import ModbusPoint
from tests.harness import libmodbus

_TABLE_LETTER = {"holding": "h", "input": "i", "coil": "c", "discrete": "d"}


@pytest.fixture(scope="session")
def libmodbus_server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C server compiled against Debian's libmodbus-dev."""
    try:
        return libmodbus.build(libmodbus.MAP_SERVER_C, tmp_path_factory.mktemp("libmodbus"))
    except libmodbus.LibmodbusMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def libmodbus_port(libmodbus_server_binary: Path, tmp_path: Path) -> Iterator[int]:
    """A running libmodbus server holding the catalog's registers; yields its port."""
    _, tables = catalog()
    lines = [
        f"{_TABLE_LETTER[table]} {address} {value}"
        for table, registers in tables.items()
        for address, value in registers.items()
    ]
    map_file = tmp_path / "registers.map"
    map_file.write_text("\n".join(lines) + "\n")
    proc, port = libmodbus.spawn(libmodbus_server_binary, str(map_file))
    try:
        yield port
    finally:
        libmodbus.stop(proc)


async def test_every_type_and_order_decodes_from_libmodbus(libmodbus_port: int) -> None:
    cases, _ = catalog()
    beyond = ModbusPoint("beyond_map", "holding", 1500, "uint16")
    endpoint = ModbusEndpoint(TcpLink("127.0.0.1", libmodbus_port), unit=1, timeout_ms=1000)
    async with ModbusDriver("libmodbus", endpoint, [p for p, _ in cases] + [beyond]) as driver:
        samples = {s.tag: s for s in await driver.read()}
    for point, expected in cases:
        sample = samples[point.name]
        assert sample.quality == "good", point
        if isinstance(expected, float):
            assert sample.value == pytest.approx(expected), point
        else:
            assert sample.value == expected, point
    assert samples["beyond_map"].quality == "bad"
    assert driver.learned.bad == {"beyond_map"}


async def test_libmodbus_float_setters_match_our_orders(libmodbus_port: int) -> None:
    """libmodbus' modbus_set_float_abcd/badc/cdab/dcba agree with our four orders.

    libmodbus before its 2022 fix (commit 49af73d) builds floats in host memory, so on
    little-endian machines every setter's output is byte-swapped per register
    (stephane/libmodbus#358, #611): its "abcd" puts BADC on the wire. Debian 12 ships 3.1.6.
    Either way the four setters must map onto our four orders one to one, as the probe's
    order finder would show a technician.
    """
    slots = {"abcd": 1000, "badc": 1002, "cdab": 1004, "dcba": 1006}
    points = [
        ModbusPoint(f"{setter}_as_{order}", "holding", address, "float32", order=order)  # type: ignore[arg-type]
        for setter, address in slots.items()
        for order in ORDERS
    ]
    endpoint = ModbusEndpoint(TcpLink("127.0.0.1", libmodbus_port), unit=1, timeout_ms=1000)
    async with ModbusDriver("libmodbus", endpoint, points) as driver:
        samples = await driver.read()
    found = {s.tag.split("_as_")[0]: s.tag.split("_as_")[1] for s in samples if s.value == 230.5}
    fixed = {"abcd": "ABCD", "badc": "BADC", "cdab": "CDAB", "dcba": "DCBA"}
    byte_swapped = {"abcd": "BADC", "badc": "ABCD", "cdab": "DCBA", "dcba": "CDAB"}
    assert found in (fixed, byte_swapped)
