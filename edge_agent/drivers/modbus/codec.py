"""Registers ⇄ values for every Modbus point type and word/byte order (pure, no I/O).

Orders name the four bytes of a 32-bit value A B C D, most significant first, as they appear
on the wire: ABCD big-endian words and bytes; CDAB words swapped; BADC bytes swapped inside
each word; DCBA both. 64-bit values follow the same two switches over four words (CDAB
reverses the word order, BADC swaps the bytes of every word). 16-bit values honour only the
byte swap; strings are ASCII, two characters per register, first character in the high byte
unless the order swaps bytes, and never word-swapped.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from functools import cache

from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.modbus.types import MULTI_REGISTER_TYPES, ORDERS, TYPES, Order, PointType
from edge_agent.errors import DecodeError

__all__ = [
    "MULTI_REGISTER_NUMERIC",
    "ORDERS",
    "all_orders",
    "decode_point",
    "decode_registers",
    "encode_point",
    "encode_value",
    "implausibility",
    "register_count",
    "scale_value",
    "set_bit",
    "unscale_value",
]

Number = int | float
Decoded = bool | int | float | str

MULTI_REGISTER_NUMERIC = MULTI_REGISTER_TYPES

# struct format character and register count of every fixed-size type.
_FIXED: dict[str, tuple[str, int]] = {
    t: (spec.struct, spec.registers) for t, spec in TYPES.items() if spec.struct and spec.registers
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    t: spec.int_range for t, spec in TYPES.items() if spec.int_range
}
_IMPLAUSIBLY_LARGE = 1e12
_SMALLEST_NORMAL = {"float32": 1.1754943508222875e-38, "float64": 2.2250738585072014e-308}


def register_count(type: PointType, length: int | None = None) -> int:
    """How many 16-bit registers (or bits, for a bit table) a value of `type` occupies."""
    if type == "bool":
        return 1
    if type == "string":
        if length is None or length < 1:
            raise ValueError("type string needs a length in registers")
        return length
    return _FIXED[type][1]


def _swaps(order: Order) -> tuple[bool, bool]:
    """(word swap, byte swap) for an order name."""
    return order in ("CDAB", "DCBA"), order in ("BADC", "DCBA")


@cache
def _words(count: int, byte_swap: bool) -> struct.Struct:
    # Packing registers little-endian is exactly "swap the two bytes of every word".
    return struct.Struct(f"{'<' if byte_swap else '>'}{count}H")


@cache
def _value(type: PointType) -> struct.Struct:
    return struct.Struct(">" + _FIXED[type][0])


def decode_registers(
    regs: Sequence[int],
    type: PointType,
    order: Order = "ABCD",
    bit: int | None = None,
) -> Decoded:
    """The raw (unscaled) value held in `regs`; raise `DecodeError` when they cannot hold one."""
    if type == "bool":
        if len(regs) != 1:
            raise DecodeError(f"bool needs 1 register or bit, got {len(regs)}")
        reg = regs[0]
        return bool((reg >> bit) & 1) if bit is not None else bool(reg)
    count = len(regs)
    if count == 1 and (type == "uint16" or type == "int16"):  # noqa: PLR1714 -- fastest test
        # The commonest tag, decoded without struct: the agent's hottest line at 100k readings/s.
        reg = regs[0]
        if not 0 <= reg <= 0xFFFF:
            raise DecodeError(f"registers out of range 0..65535: {list(regs)}")
        if order == "BADC" or order == "DCBA":  # noqa: PLR1714
            reg = ((reg & 0xFF) << 8) | (reg >> 8)
        return reg - 0x10000 if type == "int16" and reg >= 0x8000 else reg
    if type == "string":
        byte_swap = order in ("BADC", "DCBA")
        try:
            data = _words(count, byte_swap).pack(*regs)
        except struct.error as exc:
            raise DecodeError(f"string registers out of range: {list(regs)}") from exc
        # Devices pad with NULs or spaces; a NUL in the middle ends the string as in C.
        text = data.split(b"\0", 1)[0].decode("ascii", errors="replace")
        return text.rstrip(" ")
    expected, reverse, words, number = _numeric(type, order)
    if count != expected:
        raise DecodeError(f"{type} needs {expected} registers, got {count}")
    try:
        data = words.pack(*(regs[::-1] if reverse else regs))
    except struct.error as exc:
        raise DecodeError(f"registers out of range 0..65535: {list(regs)}") from exc
    value: Decoded = number.unpack(data)[0]
    return value


@cache
def _numeric(type: PointType, order: Order) -> tuple[int, bool, struct.Struct, struct.Struct]:
    # Everything decode needs for a fixed-size type, looked up once per (type, order): this is
    # the agent's hottest path (bench/modbus_poll.py).
    word_swap, byte_swap = _swaps(order)
    count = _FIXED[type][1]
    return count, word_swap and count > 1, _words(count, byte_swap), _value(type)


def encode_value(
    value: Decoded,
    type: PointType,
    order: Order = "ABCD",
    length: int | None = None,
) -> list[int]:
    """Registers that `decode_registers` turns back into `value`; raise ValueError if it cannot."""
    if type == "bool":
        return [1 if value else 0]
    word_swap, byte_swap = _swaps(order)
    if type == "string":
        count = register_count(type, length)
        if not isinstance(value, str):
            raise TypeError(f"string point needs str, got {type_name(value)}")
        data = value.encode("ascii")
        if len(data) > 2 * count:
            raise ValueError(f"{value!r} needs more than {count} registers")
        return list(_words(count, byte_swap).unpack(data.ljust(2 * count, b"\0")))
    if isinstance(value, str):
        raise TypeError(f"{type} point needs a number, got str")
    if type in _INT_RANGES:
        low, high = _INT_RANGES[type]
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{type} cannot hold {value}")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} outside {type} range {low}..{high}")
        packed = _value(type).pack(number)
    else:
        try:
            packed = _value(type).pack(float(value))
        except OverflowError as exc:
            raise ValueError(f"{value} outside {type} range") from exc
    count = _FIXED[type][1]
    words = list(_words(count, byte_swap).unpack(packed))
    return words[::-1] if word_swap else words


def type_name(value: object) -> str:
    """Short type name for messages."""
    return type(value).__name__


def scale_value(raw: Decoded, scale: float = 1.0, offset: float = 0.0) -> Decoded:
    """`raw * scale + offset` for numbers; bools, strings and unscaled integers pass unchanged."""
    if isinstance(raw, bool | str) or (scale == 1.0 and offset == 0.0):
        return raw
    return raw * scale + offset


def unscale_value(
    value: Decoded, type: PointType, scale: float = 1.0, offset: float = 0.0
) -> Decoded:
    """The raw value a device must hold so that `scale_value` reports `value` (for simulators)."""
    if isinstance(value, bool | str) or (scale == 1.0 and offset == 0.0):
        return value
    raw = (value - offset) / scale
    return round(raw) if type in _INT_RANGES else raw


def decode_point(regs: Sequence[int], point: ModbusPoint) -> Decoded:
    """The scaled value of `point` from its registers (or its one bit)."""
    try:
        raw = decode_registers(regs, point.type, point.order, point.bit)
    except DecodeError as exc:
        raise DecodeError(str(exc), point=point.name) from exc
    if point.scale == 1.0 and point.offset == 0.0:  # most tags: nothing to scale
        return raw
    return scale_value(raw, point.scale, point.offset)


def encode_point(value: Decoded, point: ModbusPoint) -> list[int]:
    """Registers that make a device report `value` for `point` (scale/offset undone)."""
    raw = unscale_value(value, point.type, point.scale, point.offset)
    return encode_value(raw, point.type, point.order, point.length)


def set_bit(register: int, bit: int, value: bool) -> int:
    """`register` with one bit (0 = least significant) set or cleared."""
    return register | (1 << bit) if value else register & ~(1 << bit) & 0xFFFF


def all_orders(regs: Sequence[int], type: PointType) -> dict[Order, Decoded]:
    """The value of `regs` read in each of the four orders (the probe's order finder)."""
    return {order: decode_registers(regs, type, order) for order in ORDERS}


def implausibility(value: object, type: PointType | None = None) -> str | None:
    """Why a decoded number looks like the wrong order or address, or None if it looks fine."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf"
        smallest = _SMALLEST_NORMAL.get(type or "float64", _SMALLEST_NORMAL["float64"])
        if value != 0.0 and abs(value) < smallest:
            return "denormal"
    if abs(value) > _IMPLAUSIBLY_LARGE:
        return "huge"
    return None
