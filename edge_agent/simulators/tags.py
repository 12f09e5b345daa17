"""Tag specifications: how one simulated quantity is exposed over Modbus, OPC-UA, S7 or
EtherNet/IP (Logix).

The same specs generate the served register image, the OPC-UA address space and the
`device_profiles/sim-*.yaml` files, so the profiles cannot drift from the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.drivers.modbus.types import REGISTER_SPAN, Order, PointType, Table
from edge_agent.drivers.s7.address import S7Type

LogixType = Literal["bool", "sint", "int", "dint", "real", "lreal", "string"]

__all__ = [
    "REGISTER_COUNT",
    "LogixTag",
    "LogixType",
    "ModbusTag",
    "OpcuaTag",
    "S7Tag",
    "SimTag",
    "Table",
    "Value",
    "ValueType",
    "WordOrder",
]

ValueType = PointType
WordOrder = Order
Value = float | int | bool | str

# Registers each fixed-width type occupies (strings carry their own length).
REGISTER_COUNT = REGISTER_SPAN


@dataclass(frozen=True, slots=True)
class ModbusTag:
    """One tag of a Modbus machine: where it lives, how it is encoded, its plausible range."""

    name: str
    table: Table
    address: int
    type: ValueType
    unit: str = ""
    order: WordOrder = "ABCD"
    length: int | None = None
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    poll_ms: int = 1000
    # Clients may write it (a setpoint, a start bit): the machine model takes the value
    # (`Machine.write`), within [lo, hi] for numbers; the profile says `writable: true`.
    writable: bool = False

    @property
    def is_bit_table(self) -> bool:
        """True for coils and discrete inputs, which are addressed in bits."""
        return self.table in ("coil", "discrete")

    @property
    def span(self) -> int:
        """Number of registers (or bits) the tag occupies."""
        if self.is_bit_table:
            return 1
        if self.type == "string":
            return self.length or 0
        return REGISTER_COUNT[self.type]


@dataclass(frozen=True, slots=True)
class OpcuaTag:
    """One variable of an OPC-UA machine, below the machine's object in the address space."""

    name: str
    path: tuple[str, ...]
    type: Literal["Double", "UInt32", "String", "Boolean"]
    unit: str = ""
    lo: float = 0.0
    hi: float = 0.0
    sampling_ms: int = 100
    decimals: int | None = None  # resolution the controller reports a Double with


@dataclass(frozen=True, slots=True)
class S7Tag:
    """One value of a simulated S7 PLC: its absolute address in a data block, as TIA writes it."""

    name: str
    address: str  # DB1.DBD0, DB1.DBX12.0, DB1.DBB40 (a string by its first byte)
    type: S7Type
    unit: str = ""
    length: int | None = None  # characters, strings only
    scale: float = 1.0
    offset: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    poll_ms: int = 1000
    writable: bool = False


@dataclass(frozen=True, slots=True)
class LogixTag:
    """One tag of a simulated Logix controller by its symbolic name, as Studio 5000 shows it."""

    name: str
    tag: str  # Speed, Program:MainProgram.Speed, Counters[1], Conveyor.Motor.Current
    type: LogixType
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    poll_ms: int = 1000
    writable: bool = False


SimTag = ModbusTag | OpcuaTag | S7Tag | LogixTag
