"""The one table of Modbus tables, data types and word orders: how many registers each type
takes, how it is packed, its integer range. The codec, the config validation, the probe and the
simulators all read it, so adding a type (or fixing one) happens here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BIT_TABLES",
    "MULTI_REGISTER_TYPES",
    "ORDERS",
    "REGISTER_SPAN",
    "REGISTER_TABLES",
    "TYPES",
    "Order",
    "PointType",
    "Table",
    "TypeSpec",
]

Table = Literal["holding", "input", "coil", "discrete"]
PointType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Order = Literal["ABCD", "CDAB", "BADC", "DCBA"]
ORDERS: tuple[Order, ...] = ("ABCD", "CDAB", "BADC", "DCBA")

# Coils and discrete inputs are read as bits (§6.1/§6.2), the other two tables as 16-bit words.
REGISTER_TABLES: frozenset[str] = frozenset({"holding", "input"})
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """One data type: registers it spans (None: a string, which gives its own `length`), its
    big-endian `struct` format character, and the range of an integer type."""

    registers: int | None
    struct: str | None = None
    int_range: tuple[int, int] | None = None

    @property
    def is_float(self) -> bool:
        """An IEEE 754 type (where NaN and denormals say "no value")."""
        return self.struct in ("f", "d")


def _int(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


TYPES: dict[str, TypeSpec] = {
    "bool": TypeSpec(1),
    "int16": TypeSpec(1, "h", _int(16, True)),
    "uint16": TypeSpec(1, "H", _int(16, False)),
    "int32": TypeSpec(2, "i", _int(32, True)),
    "uint32": TypeSpec(2, "I", _int(32, False)),
    "int64": TypeSpec(4, "q", _int(64, True)),
    "uint64": TypeSpec(4, "Q", _int(64, False)),
    "float32": TypeSpec(2, "f"),
    "float64": TypeSpec(4, "d"),
    "string": TypeSpec(None),
}

# 16-bit registers each fixed-size type occupies (a string spans its `length`).
REGISTER_SPAN: dict[str, int] = {t: s.registers for t, s in TYPES.items() if s.registers}
# Types whose word order matters (`order` applies): numbers of two or four registers.
MULTI_REGISTER_TYPES: frozenset[str] = frozenset(t for t, n in REGISTER_SPAN.items() if n > 1)
