"""What a simulated device stores for an engineering value (pure).

Encoding into registers is the driver's codec (`edge_agent.drivers.modbus.codec.encode_value`),
so the simulator and the agent share one definition of every type and word order. This module
only adds what a device does before that: undo scale/offset, round, clamp to the type's range
(an out-of-range anomaly saturates like a real transmitter), and the value a correct client
then decodes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial

from edge_agent.drivers.modbus.codec import encode_value
from edge_agent.drivers.modbus.types import TYPES
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["TYPE_RANGE", "encode", "quantize", "quantizer", "raw_value"]

TYPE_RANGE: dict[str, tuple[int, int]] = {t: s.int_range for t, s in TYPES.items() if s.int_range}
_FLOAT32_MAX = 3.4028234663852886e38
_F32 = struct.Struct(">f")


def raw_value(tag: ModbusTag, value: Value) -> int | float | bool | str:
    """The raw number the device stores for an engineering value: unscaled, rounded, clamped."""
    if tag.type == "bool":
        return bool(value)
    if tag.type == "string":
        return str(value).encode("ascii", "replace")[: 2 * tag.span].decode("ascii")
    number = (float(value) - tag.offset) / tag.scale
    if tag.type == "float64":
        return number
    if tag.type == "float32":
        return max(-_FLOAT32_MAX, min(_FLOAT32_MAX, number))
    lo, hi = TYPE_RANGE[tag.type]
    return max(lo, min(hi, round(number)))


def quantize(tag: ModbusTag, value: Value) -> Value:
    """The engineering value a correct client decodes from what the simulator serves."""
    raw = raw_value(tag, value)
    if isinstance(raw, bool | str):
        return raw
    if tag.type == "float32":
        raw = struct.unpack(">f", struct.pack(">f", raw))[0]
    if tag.scale == 1.0 and tag.offset == 0.0:
        return raw
    return raw * tag.scale + tag.offset


def quantizer(tag: ModbusTag) -> Callable[[Value], Value]:
    """`quantize` specialised for one tag: the same results, cheaper on the per-tick path."""
    if tag.type in TYPE_RANGE:
        lo, hi = TYPE_RANGE[tag.type]
        scale, offset = tag.scale, tag.offset
        if scale == 1.0 and offset == 0.0:
            return lambda v: max(lo, min(hi, round(float(v))))
        return lambda v: max(lo, min(hi, round((float(v) - offset) / scale))) * scale + offset
    if tag.type == "float32" and tag.scale == 1.0 and tag.offset == 0.0:
        pack, unpack = _F32.pack, _F32.unpack
        return lambda v: float(unpack(pack(max(-_FLOAT32_MAX, min(_FLOAT32_MAX, float(v)))))[0])
    return partial(quantize, tag)


def encode(tag: ModbusTag, value: Value) -> list[int]:
    """Registers holding `value` for a register-table tag (a bit tag sets only its bit)."""
    raw = raw_value(tag, value)
    if tag.type == "bool":
        return [(1 << (tag.bit or 0)) if raw else 0]
    return encode_value(raw, tag.type, tag.order, tag.length)
