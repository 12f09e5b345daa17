"""One pymodbus client and one asyncio lock per link, shared by every device on it.

Several RTU devices on one serial line must never interleave frames: a request and its
answer happen under the link's bus lock, and all devices on a port share the same client.
pymodbus exceptions become ours here (house style §2), so nothing above imports pymodbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from edge_agent.drivers.modbus.codec import set_bit
from edge_agent.drivers.modbus.endpoint import SerialLink, TcpLink
from edge_agent.errors import (
    ConfigError,
    ConfigProblem,
    DecodeError,
    DeviceUnavailable,
    WriteRefused,
)

__all__ = ["EXCEPTION_NAMES", "BusPool", "ModbusBus", "RequestRejected", "default_pool"]

# Modbus Application Protocol §7: exception codes a device may answer with.
EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
# The device refuses this request as such (function, span or length): retrying it unchanged
# cannot help, splitting it can. Other codes say the device is busy or broken right now.
_REJECTING = frozenset({1, 2, 3})
# Beyond pymodbus' own response timeout: a last guard in case the client itself hangs.
_GUARD_S = 1.0


class RequestRejected(DecodeError):  # noqa: N818 -- names what the device did
    """The device answered a read with exception 1, 2 or 3: it will not serve that span."""

    def __init__(self, code: int, table: str, address: int, count: int) -> None:
        self.code = code
        name = EXCEPTION_NAMES.get(code, "UNKNOWN")
        super().__init__(f"{table} {address}+{count} rejected: exception {code} {name}")


# What to check next for the exception codes that say "busy or broken", not "bad request"
# (Modbus Application Protocol §7; 10 and 11 come from gateways in front of serial devices).
_EXCEPTION_HINTS = {
    4: "the device reports an internal failure (some devices, and servers holding several units, "
    "also answer this for a unit id they do not have): check that `unit: {unit}` in the config is "
    "the device's Modbus address, then its display or fault log",
    5: "the device accepted a long operation; poll it less often (poll interval in the config)",
    6: "the device is busy: raise the poll interval, or check that no other master polls it",
    8: "the device reports a memory parity error: it needs service",
    10: "the gateway has no path to unit {unit}: check `unit` in the config against the "
    "gateway's routing table and its serial port settings",
    11: "the gateway got no answer from unit {unit}: check that the device behind it is powered, "
    "that {unit} is its Modbus address (`unit` in the config) and its serial wiring and baud "
    "rate",
}


def _open_hint(link: TcpLink | SerialLink) -> str:
    if isinstance(link, TcpLink):
        return (
            f"check that the machine is powered and on the network, that {link.host}:{link.port} "
            "is its Modbus TCP address (host and port in the config; the standard port is 502) "
            f"and that no firewall blocks it: nc -vz {link.host} {link.port}"
        )
    return (
        f"check that {link.port} is the adapter's port (ls -l /dev/serial/by-id/), that this "
        "account may open it (sudo usermod -aG dialout $USER, then log in again) and that no "
        "other program holds it (fuser -v " + link.port + ")"
    )


def _silent_hint(link: TcpLink | SerialLink, unit: int) -> str:
    if isinstance(link, TcpLink):
        return (
            f"the connection is open but unit {unit} did not answer: check `unit` in the config "
            "(many devices answer only their own unit id) and that no other master is flooding it"
        )
    return (
        f"no reply from unit {unit}: check `unit` (the device's Modbus address), baud rate, "
        "parity and stop bits against the device's settings, and the A/B wiring and termination"
    )


def _client(link: TcpLink | SerialLink, timeout_s: float) -> Any:
    # retries=0 and reconnect_delay=0: the driver owns retrying and reconnecting (with backoff),
    # so a dead device costs one timeout per attempt, not four.
    if isinstance(link, TcpLink):
        return AsyncModbusTcpClient(
            link.host, port=link.port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
    return AsyncModbusSerialClient(
        link.port,
        baudrate=link.baudrate,
        parity=link.parity,
        stopbits=link.stopbits,
        bytesize=link.bytesize,
        timeout=timeout_s,
        retries=0,
        reconnect_delay=0,
    )


def _quiet_pymodbus() -> None:
    # pymodbus logs every failed connect and timeout itself (a log storm from one dead device).
    # Every failure reaches the driver as our exception, logged once per streak and counted,
    # so the library's own log is reduced to what would be a bug in it.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusBus:
    """A link's client and bus lock; reads one span at a time and maps failures to our errors."""

    def __init__(self, link: TcpLink | SerialLink, timeout_s: float) -> None:
        _quiet_pymodbus()
        self.link = link
        self.timeout_s = timeout_s
        self.lock = asyncio.Lock()
        self.users = 0
        self.connects = 0
        self._client: Any = None

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> bool:
        """Open the link unless it is open (True if this call opened it); `DeviceUnavailable`."""
        async with self.lock:
            if self.connected:
                return False
            self._close_client()
            client = _client(self.link, self.timeout_s)
            self._client = client
            try:
                async with asyncio.timeout(self.timeout_s + _GUARD_S):
                    ok = await client.connect()
            except (TimeoutError, OSError, ModbusException) as exc:
                raise DeviceUnavailable(
                    f"cannot open {self._where()}: {exc}", hint=_open_hint(self.link)
                ) from exc
            if not ok:
                raise DeviceUnavailable(f"cannot open {self._where()}", hint=_open_hint(self.link))
            self.connects += 1
            return True

    async def read(
        self, table: str, address: int, count: int, unit: int, timeout_s: float
    ) -> list[int]:
        """Registers (or bits as 0/1) of one span; `RequestRejected` or `DeviceUnavailable`."""
        async with self.lock:
            client = self._connected()
            call: Callable[..., Awaitable[Any]] = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[table]
            response = await self._exchange(
                lambda: call(address, count=count, device_id=unit),
                (table, address, count), unit, timeout_s,
            )  # fmt: skip
        if table in ("coil", "discrete"):
            # Bits arrive padded to whole bytes; keep only the ones asked for.
            return [1 if b else 0 for b in response.bits[:count]]
        registers: list[int] = response.registers
        if len(registers) != count:
            raise DeviceUnavailable(f"unit {unit} sent {len(registers)} registers, not {count}")
        return registers

    async def write(
        self, table: str, address: int, values: list[int], unit: int, timeout_s: float
    ) -> None:
        """Write coils (FC5 one, FC15 several) or holding registers (FC6 one, FC16 several)."""
        async with self.lock:
            client = self._connected()
            if table == "coil":
                bits = [bool(v) for v in values]
                call = (
                    (lambda: client.write_coil(address, bits[0], device_id=unit))
                    if len(bits) == 1
                    else (lambda: client.write_coils(address, bits, device_id=unit))
                )
            elif table == "holding":
                call = (
                    (lambda: client.write_register(address, values[0], device_id=unit))
                    if len(values) == 1
                    else (lambda: client.write_registers(address, values, device_id=unit))
                )
            else:
                raise WriteRefused(f"{table} is read-only in Modbus")
            await self._exchange(call, (table, address, len(values)), unit, timeout_s)

    async def write_bit(
        self, address: int, bit: int, value: bool, unit: int, timeout_s: float
    ) -> None:
        """Set one bit of a holding register: read (FC3), change the bit, write (FC6), with the
        bus held throughout so no other request on the link comes between."""
        async with self.lock:
            client = self._connected()
            response = await self._exchange(
                lambda: client.read_holding_registers(address, count=1, device_id=unit),
                ("holding", address, 1), unit, timeout_s,
            )  # fmt: skip
            register = set_bit(int(response.registers[0]), bit, value)
            await self._exchange(
                lambda: client.write_register(address, register, device_id=unit),
                ("holding", address, 1), unit, timeout_s,
            )  # fmt: skip

    def _connected(self) -> Any:
        client = self._client
        if client is None or not client.connected:
            raise DeviceUnavailable(f"{self._where()} is not connected")
        return client

    async def _exchange(
        self,
        call: Callable[[], Awaitable[Any]],
        span: tuple[str, int, int],
        unit: int,
        timeout_s: float,
    ) -> Any:
        """One request on (table, address, count) and its answer (caller holds the lock);
        failures become ours."""
        table, address, count = span
        try:
            async with asyncio.timeout(max(timeout_s, self.timeout_s) + _GUARD_S):
                response = await call()
        except (TimeoutError, OSError, ModbusException) as exc:
            raise DeviceUnavailable(
                f"{self._silence(unit, exc)} ({table} {address}+{count})",
                hint=_silent_hint(self.link, unit),
            ) from exc
        if response.isError():
            code = int(response.exception_code)
            if code in _REJECTING:
                raise RequestRejected(code, table, address, count)
            name = EXCEPTION_NAMES.get(code, "UNKNOWN")
            raise DeviceUnavailable(
                f"unit {unit} answered exception {code} {name}",
                hint=_EXCEPTION_HINTS.get(code, "").format(unit=unit),
            )
        return response

    async def reset(self) -> None:
        """Drop the connection so the next `connect` starts from a fresh client."""
        async with self.lock:
            self._close_client()

    def close(self) -> None:
        """Close the client now."""
        self._close_client()

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken transport may raise anything
                client.close()

    def _silence(self, unit: int, exc: BaseException) -> str:
        # Words a technician reads in the fleet view ("… since 03:12:04"), not the library's.
        # TimeoutError is an OSError: test it first.
        if not isinstance(exc, TimeoutError) and isinstance(exc, OSError | ConnectionException):
            return f"connection to {self._where()} lost ({exc or type(exc).__name__})"
        if isinstance(self.link, TcpLink):
            return f"no answer from {self._where()} (unit {unit})"
        return f"no reply from unit {unit} on {self._where()}"

    def _where(self) -> str:
        if isinstance(self.link, TcpLink):
            return f"{self.link.host}:{self.link.port}"
        return self.link.port


class BusPool:
    """Hands out one `ModbusBus` per link key; the runtime owns one pool for all devices."""

    def __init__(self) -> None:
        self._buses: dict[tuple[str, ...], ModbusBus] = {}

    def acquire(self, link: TcpLink | SerialLink, timeout_s: float) -> ModbusBus:
        """The shared bus for `link`; serial devices on one port must agree on line settings."""
        bus = self._buses.get(link.key)
        if bus is None:
            bus = self._buses[link.key] = ModbusBus(link, timeout_s)
        elif bus.link != link:
            raise ConfigError(
                [
                    ConfigProblem(
                        file="",
                        path=f"serial {getattr(link, 'port', '')}",
                        message=f"devices on one port disagree: {bus.link} vs {link}",
                        hint="give every device on one serial port the same baudrate, "
                        "parity, stopbits and bytesize",
                    )
                ]
            )
        # One client serves every device on the link, so it waits as long as the slowest needs.
        bus.timeout_s = max(bus.timeout_s, timeout_s)
        bus.users += 1
        return bus

    def release(self, bus: ModbusBus) -> None:
        """Give a bus back; the last user closes it."""
        bus.users -= 1
        if bus.users <= 0:
            bus.close()
            self._buses.pop(bus.link.key, None)

    def buses(self) -> list[ModbusBus]:
        """The buses currently open or in use."""
        return list(self._buses.values())


# One pool per event loop: drivers built without an explicit pool still share a serial port
# (and a gateway connection), and no lock outlives the loop it belongs to.
_DEFAULT_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BusPool] = (
    weakref.WeakKeyDictionary()
)


def default_pool() -> BusPool:
    """The running event loop's shared pool."""
    loop = asyncio.get_running_loop()
    pool = _DEFAULT_POOLS.get(loop)
    if pool is None:
        pool = _DEFAULT_POOLS[loop] = BusPool()
    return pool
