"""Modbus TCP shell: one pymodbus server per simulated machine, answering from its RegisterImage.

One port per machine (unit id 1) so a fault on one machine — a dropped connection, a port that
refuses, a slow answer — never touches its neighbours, exactly as with real devices on a line.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import ModbusIOException, NoSuchIdException
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.transaction import TransactionManager

from edge_agent.drivers.modbus.codec import decode_registers, scale_value
from edge_agent.simulators import faults
from edge_agent.simulators.faults import FaultBook
from edge_agent.simulators.image import FUNCTION_TABLE, RegisterImage
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["UNIT_ID", "ModbusDevice"]

UNIT_ID = 1


class _Datastore(ModbusServerContext):
    """The datastore pymodbus calls for every request, answering from one device's image.

    pymodbus 3.16 hands a ModbusServerContext with `old_simulator` set straight to the request
    handler, which is the one hook that lets us delay answers and return exception codes.
    """

    def __init__(self, device: ModbusDevice) -> None:
        # The base initialiser only converts legacy datablocks and logs a deprecation notice.
        self.old_simulator = True
        self.simdevices: list[Any] = []
        self._device = device

    def device_ids(self) -> list[int]:
        return [UNIT_ID]

    async def async_getValues(  # noqa: N802 - pymodbus names it
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        return await self._device.answer(device_id, func_code, address, count)

    async def async_setValues(  # noqa: N802 - pymodbus names it
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        return await self._device.write(device_id, func_code, address, values)


class _RequestHandler(ServerRequestHandler):
    """One client connection; answers each request with that request's own transaction id.

    pymodbus 3.16's handler answers from `self.last_pdu` after awaiting the datastore, so a
    slow answer would go out with the id of a newer request and a client would take stale data
    for a fresh answer. A real device answers every request with its own id; so does this.
    """

    def __init__(self, owner: ModbusTcpServer) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect
        )
        self._pending: set[asyncio.Task[None]] = set()

    def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
        try:
            used: int = TransactionManager.callback_data(self, data, addr)
        except ModbusIOException as exc:
            self.server_send(  # type: ignore[no-untyped-call]
                ExceptionResponse(
                    exc.fcode or 0,
                    exception_code=ExcCodes.ILLEGAL_FUNCTION,
                    device_id=exc.dev_id,
                    transaction=exc.transaction_id,
                ),
                addr,
            )
            return len(data)
        if self.last_pdu is not None:
            task = asyncio.get_running_loop().create_task(self._answer(self.last_pdu, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return used

    async def _answer(self, pdu: Any, addr: tuple[str, int] | None) -> None:
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except NoSuchIdException:
            response = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        if self.transport is not None:
            self.server_send(response, addr)  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> _RequestHandler:
        return _RequestHandler(self)


class ModbusDevice:
    """One simulated Modbus machine: its image, its TCP server, its faults, and the writes it
    takes (tags marked `writable`, handed to `on_write`; everything else is read-only)."""

    def __init__(
        self,
        name: str,
        tags: tuple[ModbusTag, ...],
        faults: FaultBook,
        on_write: Callable[[str, Value], None] | None = None,
    ) -> None:
        self.name = name
        self.on_write = on_write
        self.image = RegisterImage(tags)
        self.faults = faults
        self.host = "127.0.0.1"
        self.port = 0
        self.requests = 0
        self._server: _TcpServer | None = None
        self._datastore = _Datastore(self)

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (port 0: any free port, then remembered for restarts)."""
        self.host = host
        server = _TcpServer(self._datastore, address=(host, port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            # pymodbus logs the bind error and raises a bare RuntimeError: raise what it was, so
            # `edge-agent simulate` says which address it could not listen on and what to do.
            raise OSError(errno.EADDRINUSE, f"{self.name}: {host}:{port} is in use") from exc
        self._server = server
        listener: asyncio.Server = server.transport  # type: ignore[assignment]
        self.port = listener.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        """False while the device is stopped or offline."""
        return self._server is not None

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    def drop_connections(self) -> int:
        """Close every open client connection now; returns how many were closed."""
        if self._server is None:
            return 0
        conns = list(self._server.active_connections.values())
        for conn in conns:
            conn.close()
        return len(conns)

    async def go_offline(self, seconds: float) -> None:
        """Refuse connections for `seconds`, then listen again on the same port."""
        await faults.go_offline(self, seconds)

    async def answer(
        self, unit: int, func_code: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        """Answer one request, applying the faults in force."""
        self.requests += 1
        if unit != UNIT_ID:
            # pymodbus answers exception 0x0B (gateway target failed to respond) for this.
            raise NoSuchIdException(f"{self.name} answers unit id {UNIT_ID} only, not {unit}")
        table = FUNCTION_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        for fault in self.faults.active(self.name, time.monotonic()):
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_s)
            elif fault.kind == "exception" and (
                fault.tag is None
                or any(
                    t.name == fault.tag and self.image.covers(t, table, address, count)
                    for t in self.image.tags
                )
            ):
                return ExcCodes(fault.code)
        values = self.image.read(table, address, count)
        if values is None:
            return ExcCodes.ILLEGAL_ADDRESS
        return values

    async def write(
        self, unit: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        """Take a write of one whole writable tag, as a device takes a setpoint; a write to
        anything else, or of part of a tag, is refused (exception 2), a value outside the
        tag's range too (exception 3)."""
        answer = await self.answer(unit, func_code, address, len(values))
        if isinstance(answer, ExcCodes):
            return answer
        table = FUNCTION_TABLE[func_code]
        tag = next(
            (
                t
                for t in self.image.tags
                if t.writable and t.table == table and t.address == address
                and t.span == len(values)
            ),
            None,
        )  # fmt: skip
        if tag is None or self.on_write is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if tag.is_bit_table:
            value: Value = bool(values[0])
        else:
            raw = decode_registers([int(v) for v in values], tag.type, tag.order, tag.bit)
            value = scale_value(raw, tag.scale, tag.offset)
            if isinstance(value, int | float) and not isinstance(value, bool) and not (
                tag.lo <= value <= tag.hi
            ):  # fmt: skip
                return ExcCodes.ILLEGAL_VALUE
        self.on_write(tag.name, value)
        return None
