"""Where a Modbus device is: a TCP host or a serial line, and its unit id (plain values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ModbusEndpoint", "SerialLink", "TcpLink"]


@dataclass(frozen=True, slots=True)
class TcpLink:
    """Modbus TCP: one connection per host and port, shared by the unit ids behind a gateway."""

    host: str
    port: int = 502

    @property
    def key(self) -> tuple[str, ...]:
        """Identity of the connection; devices with equal keys share one client and lock."""
        return ("tcp", self.host, str(self.port))


@dataclass(frozen=True, slots=True)
class SerialLink:
    """Modbus RTU over a serial port; every device on the port shares one client and lock."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8

    @property
    def key(self) -> tuple[str, ...]:
        """Identity of the connection: the port alone, whatever the line settings say."""
        return ("serial", self.port)


@dataclass(frozen=True, slots=True)
class ModbusEndpoint:
    """One device: the link it is on, its unit id and how long to wait for its answers."""

    link: TcpLink | SerialLink
    unit: int = 1
    timeout_ms: int = 1000

    @property
    def timeout_s(self) -> float:
        """The response timeout in seconds."""
        return self.timeout_ms / 1000
