"""What the Modbus driver reads: plain frozen values, independent of the pydantic config models."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.drivers.modbus.types import BIT_TABLES, Order, PointType, Table

__all__ = ["BIT_TABLES", "ModbusPoint", "Order", "PointType", "Table"]


@dataclass(frozen=True, slots=True)
class ModbusPoint:
    """One tag of a device: where its registers are and how to turn them into a value.

    `address` is the 0-based PDU address; `length` counts registers and matters only for
    strings; `bit` picks one bit (0 = least significant) of a 16-bit register for type bool.
    The reported value is `raw * scale + offset` for numeric types.
    """

    name: str
    table: Table
    address: int
    type: PointType
    length: int | None = None
    order: Order = "ABCD"
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    deadband: float | None = None
    poll_ms: int = 1000
    unit: str | None = None
    # Sent at least this often even while the deadband holds it back (its heartbeat).
    max_interval_ms: int = 60_000
    # Commands may write it, within [min, max] in engineering units (docs/commands.md).
    writable: bool = False
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"{self.name}: address {self.address} outside 0..65535")
        if self.table in BIT_TABLES and self.type != "bool":
            raise ValueError(f"{self.name}: table {self.table} holds bits, type must be bool")
        if self.type == "string" and (self.length is None or not 1 <= self.length <= 125):
            # One read carries at most 125 registers (Modbus Application Protocol §6.3).
            raise ValueError(f"{self.name}: type string needs length 1..125 (registers)")
        if self.bit is not None and not (
            0 <= self.bit <= 15 and self.type == "bool" and not self.is_bit
        ):
            raise ValueError(f"{self.name}: bit 0..15 picks from a register, for type bool only")
        if self.poll_ms <= 0:
            raise ValueError(f"{self.name}: poll_ms must be > 0")

    @property
    def is_bit(self) -> bool:
        """True when the point lives in a bit table (coil or discrete input)."""
        return self.table in BIT_TABLES
