"""Test harness: real pymodbus servers over TCP and RTU with known register maps and faults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.drivers.modbus.points import ModbusPoint

# A register map: address -> 16-bit value (or bit 0/1 for coils and discrete inputs);
# addresses left out inside the covered range answer exception 2 (ILLEGAL DATA ADDRESS).
RegisterMap = dict[int, int]


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _blocks(values: RegisterMap, bits: bool) -> list[SimData]:
    if bits:
        # Bit tables cannot have holes in pymodbus: unset bits read as 0.
        size = max(values, default=0) + 1
        return [
            SimData(0, values=[bool(values.get(a)) for a in range(size)], datatype=DataType.BITS)
        ]
    if not values:
        # pymodbus needs every table to exist; one invalid cell answers exception 2.
        return [SimData(0, count=1, datatype=DataType.INVALID)]
    out: list[SimData] = []
    addresses = sorted(values)
    start = prev = addresses[0]
    if start > 0:
        out.append(SimData(0, count=start, datatype=DataType.INVALID))
    run = [values[start]]
    for address in addresses[1:]:
        if address == prev + 1:
            run.append(values[address])
        else:
            out.append(SimData(start, values=run, datatype=DataType.REGISTERS))
            out.append(SimData(prev + 1, count=address - prev - 1, datatype=DataType.INVALID))
            start, run = address, [values[address]]
        prev = address
    out.append(SimData(start, values=run, datatype=DataType.REGISTERS))
    return out


def sim_device(
    unit: int,
    *,
    holding: RegisterMap | None = None,
    input: RegisterMap | None = None,
    coils: RegisterMap | None = None,
    discrete: RegisterMap | None = None,
    action: Callable[..., Any] | None = None,
) -> SimDevice:
    """A pymodbus simulated device with four separate tables (coils addressed per bit)."""
    return SimDevice(
        id=unit,
        simdata=(
            _blocks(coils or {}, bits=True),
            _blocks(discrete or {}, bits=True),
            _blocks(holding or {}, bits=False),
            _blocks(input or {}, bits=False),
        ),
        action=action,
    )


@contextlib.asynccontextmanager
async def tcp_server(devices: Sequence[SimDevice], port: int | None = None) -> AsyncIterator[int]:
    """A pymodbus TCP server on 127.0.0.1; yields its port and shuts it down on exit."""
    port = port or free_port()
    server = ModbusTcpServer(list(devices), address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()


@contextlib.asynccontextmanager
async def serial_server(devices: Sequence[SimDevice], tty: str) -> AsyncIterator[None]:
    """A pymodbus RTU server answering on one end of a pty pair."""
    server = ModbusSerialServer(list(devices), port=tty, baudrate=115200)
    await server.serve_forever(background=True)
    try:
        yield
    finally:
        await server.shutdown()


class Gate:
    """A server-side stall switch: while closed, matching requests hang (a silent device)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.stalled = 0

    async def action(self, *_args: Any) -> None:
        """pymodbus SimDevice action hook: wait while the gate is closed."""
        if not self.open.is_set():
            self.stalled += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.open.wait()


# -- known register contents, encoded here independently of the codec under test -----------

# Byte positions, most significant first, that each order puts on the wire (2, 4 and 8 bytes).
_PERMUTATIONS: dict[int, dict[str, list[int]]] = {
    2: {"ABCD": [0, 1], "CDAB": [0, 1], "BADC": [1, 0], "DCBA": [1, 0]},
    4: {"ABCD": [0, 1, 2, 3], "CDAB": [2, 3, 0, 1], "BADC": [1, 0, 3, 2], "DCBA": [3, 2, 1, 0]},
    8: {
        "ABCD": [0, 1, 2, 3, 4, 5, 6, 7],
        "CDAB": [6, 7, 4, 5, 2, 3, 0, 1],
        "BADC": [1, 0, 3, 2, 5, 4, 7, 6],
        "DCBA": [7, 6, 5, 4, 3, 2, 1, 0],
    },
}
_STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
EXPECTED: dict[str, int | float] = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3456789012,
    "int64": -1234567890123456789,
    "uint64": 12345678901234567890,
    "float32": 230.5,
    "float64": -1234.5678,
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def reference_registers(value: int | float, type_: str, order: str) -> list[int]:
    """Registers a device with `order` holds for `value`, from struct and the tables above."""
    big = struct.pack(_STRUCT[type_], value)
    wire = bytes(big[i] for i in _PERMUTATIONS[len(big)][order])
    return [wire[i] << 8 | wire[i + 1] for i in range(0, len(wire), 2)]


def catalog() -> tuple[list[tuple[ModbusPoint, object]], dict[str, RegisterMap]]:
    """Points for every type × order plus strings and bits, the values expected, the maps."""
    cases: list[tuple[ModbusPoint, object]] = []
    tables: dict[str, RegisterMap] = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
    address = 0
    for type_, value in EXPECTED.items():
        for order in ORDERS:
            regs = reference_registers(value, type_, order)
            point = ModbusPoint(f"{type_}_{order}", "holding", address, type_, order=order)  # type: ignore[arg-type]
            cases.append((point, value))
            for i, reg in enumerate(regs):
                tables["holding"][address + i] = reg
            address += len(regs)
    # Strings: "SDM630-v2" in 6 registers, first character in the high byte, NUL padded; the
    # byte-swapped layout (BADC) puts it in the low byte.
    text = b"SDM630-v2".ljust(12, b"\0")
    for base, order, layout in (
        (0, "ABCD", text),
        (10, "BADC", bytes(text[i ^ 1] for i in range(12))),
    ):
        point = ModbusPoint(f"string_{order}", "input", base, "string", length=6, order=order)  # type: ignore[arg-type]
        cases.append((point, "SDM630-v2"))
        for i in range(6):
            tables["input"][base + i] = layout[2 * i] << 8 | layout[2 * i + 1]
    # Bits: a status word 0x8008 (bits 3 and 15), a plain bool register, coils, discrete inputs.
    tables["holding"][100] = 0x8008
    tables["holding"][101] = 0
    cases += [
        (ModbusPoint("status_bit3", "holding", 100, "bool", bit=3), True),
        (ModbusPoint("status_bit4", "holding", 100, "bool", bit=4), False),
        (ModbusPoint("status_bit15", "holding", 100, "bool", bit=15), True),
        (ModbusPoint("flag_word", "holding", 101, "bool"), False),
        (ModbusPoint("scaled", "holding", 102, "int16", scale=0.1, offset=-40.0, unit="°C"), 21.5),
    ]
    tables["holding"][102] = 615
    for i, bit in enumerate([1, 0, 1, 1, 0, 0, 0, 1]):
        tables["coil"][i] = bit
        tables["discrete"][i + 3] = 1 - bit
        cases.append((ModbusPoint(f"coil{i}", "coil", i, "bool"), bool(bit)))
        cases.append((ModbusPoint(f"di{i + 3}", "discrete", i + 3, "bool"), not bit))
    return cases, tables


class FlakyProxy:
    """A TCP proxy in front of a device that can fail at the socket edge, mid-request.

    `cut_next_request()`: the next request that arrives closes the connection instead of being
    forwarded (a device or gateway dropping the link in the middle of a poll).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.cuts = 0
        self.connections = 0
        self._cut_next = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FlakyProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut_next_request(self) -> None:
        """Drop the connection when the next request arrives."""
        self._cut_next = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upstream_to_client() -> None:
            while data := await up_reader.read(4096):
                writer.write(data)
                await writer.drain()

        back = asyncio.create_task(upstream_to_client())
        self._tasks.add(back)
        try:
            while data := await reader.read(4096):
                if self._cut_next:
                    self._cut_next = False
                    self.cuts += 1
                    break
                up_writer.write(data)
                await up_writer.drain()
        finally:
            back.cancel()
            self._tasks.discard(back)
            for w in (writer, up_writer):
                w.close()
