"""What a simulated S7 or Logix PLC stores for an engineering value, and the S7 data block image
(pure).

As for Modbus (registers.py), the device undoes scale/offset, rounds, clamps to the type's range
(an out-of-range anomaly saturates as a real transmitter does) and keeps a REAL in 32 bits; a
correct client decodes exactly `quantize(tag, value)`. The bytes of an S7 value are the
driver's own encoding (edge_agent/drivers/s7/address.py), so simulator and agent share one
definition of every S7 type.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Collection

from edge_agent.drivers.s7.address import S7Address, byte_size, encode, parse_address
from edge_agent.simulators.tags import LogixTag, S7Tag, Value

__all__ = ["INT_RANGE", "S7Image", "quantize", "raw_value"]

INT_RANGE: dict[str, tuple[int, int]] = {
    "byte": (0, 0xFF), "word": (0, 0xFFFF), "dword": (0, 0xFFFF_FFFF), "sint": (-128, 127),
    "int": (-(2**15), 2**15 - 1), "dint": (-(2**31), 2**31 - 1), "uint": (0, 0xFFFF),
    "udint": (0, 0xFFFF_FFFF),
}  # fmt: skip
_FLOAT32_MAX = 3.4028234663852886e38
_F32 = struct.Struct(">f")
# Characters a Logix SSTRING holds, and the S7 STRING default when a profile names no length.
_SSTRING_MAX = 82


def raw_value(tag: S7Tag | LogixTag, value: Value) -> bool | int | float | str:
    """The raw value the PLC keeps for an engineering value: unscaled, rounded, clamped."""
    if tag.type == "bool":
        return bool(value)
    if tag.type == "string":
        limit = (tag.length if isinstance(tag, S7Tag) else None) or _SSTRING_MAX
        return str(value).encode("latin-1", "replace")[:limit].decode("latin-1")
    number = (float(value) - tag.offset) / tag.scale
    if tag.type == "lreal":
        return number
    if tag.type == "real":
        clamped = max(-_FLOAT32_MAX, min(_FLOAT32_MAX, number))
        return float(_F32.unpack(_F32.pack(clamped))[0])
    lo, hi = INT_RANGE[tag.type]
    return max(lo, min(hi, round(number)))


def quantize(tag: S7Tag | LogixTag, value: Value) -> Value:
    """The engineering value a correct client decodes from what the simulator serves."""
    raw = raw_value(tag, value)
    if isinstance(raw, bool | str) or (tag.scale == 1.0 and tag.offset == 0.0):
        return raw
    return raw * tag.scale + tag.offset


class S7Image:
    """The data block(s) of one simulated S7 PLC: bytes per DB number, rewritten every tick.

    Only data block addresses are served (a line PC reads a DB the PLC program fills); bools
    sharing a byte are written together, so one bit never clears its neighbours.
    """

    def __init__(self, tags: tuple[S7Tag, ...]) -> None:
        self.tags = tags
        self._where: dict[str, S7Address] = {}
        sizes: dict[int, int] = defaultdict(int)
        for tag in tags:
            address = parse_address(tag.address)
            if address.area != "DB":
                raise ValueError(f"{tag.name}: the simulator serves data blocks only")
            self._where[tag.name] = address
            end = address.byte + byte_size(tag.type, tag.length or 254)
            sizes[address.db] = max(sizes[address.db], end)
        self.blocks: dict[int, bytearray] = {db: bytearray(size) for db, size in sizes.items()}
        self._bit_bytes: dict[tuple[int, int], list[S7Tag]] = defaultdict(list)
        for tag in tags:
            where = self._where[tag.name]
            if tag.type == "bool":
                self._bit_bytes[where.db, where.byte].append(tag)

    def bytes_of(
        self, values: dict[str, Value], changed: Collection[str] | None = None
    ) -> dict[int, dict[int, bytes]]:
        """Per data block, the bytes to write at each offset for `values` (all of them, or only
        the `changed` ones)."""
        out: dict[int, dict[int, bytes]] = defaultdict(dict)
        for tag in self.tags:
            if tag.type == "bool" or (changed is not None and tag.name not in changed):
                continue
            where = self._where[tag.name]
            raw = raw_value(tag, values[tag.name])
            out[where.db][where.byte] = encode(tag.type, raw, tag.length or 254)
        for (db, byte), group in self._bit_bytes.items():
            if changed is not None and not any(t.name in changed for t in group):
                continue
            bits = 0
            for tag in group:
                if values[tag.name]:
                    bits |= 1 << (self._where[tag.name].bit or 0)
            out[db][byte] = bytes([bits])
        return out

    def update(self, values: dict[str, Value], changed: Collection[str] | None = None) -> None:
        """Write tag values into the data blocks (no locking: see S7Device.update)."""
        for db, writes in self.bytes_of(values, changed).items():
            block = self.blocks[db]
            for at, data in writes.items():
                block[at : at + len(data)] = data
