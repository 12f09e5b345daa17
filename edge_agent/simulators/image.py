"""The memory a simulated Modbus device serves: registers and bits per table (pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from edge_agent.simulators.registers import encode
from edge_agent.simulators.tags import ModbusTag, Table, Value

__all__ = ["FUNCTION_TABLE", "RegisterImage"]

# Modbus Application Protocol §6: function codes and the table each one addresses.
FUNCTION_TABLE: dict[int, Table] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    23: "holding",
    4: "input",
}
_WORD_TABLES: tuple[Table, ...] = ("holding", "input")
_BIT_TABLES: tuple[Table, ...] = ("coil", "discrete")


class RegisterImage:
    """Registers and bits of one device, rewritten from tag values on every tick."""

    def __init__(self, tags: tuple[ModbusTag, ...]) -> None:
        self.tags = tags
        self.words: dict[Table, list[int]] = {}
        self.bits: dict[Table, list[bool]] = {}
        sizes: dict[str, int] = defaultdict(int)
        for tag in tags:
            sizes[tag.table] = max(sizes[tag.table], tag.address + tag.span)
        for word_table in _WORD_TABLES:
            self.words[word_table] = [0] * sizes[word_table]
        for bit_table in _BIT_TABLES:
            self.bits[bit_table] = [False] * sizes[bit_table]
        # Several bool tags may share one status register: group them so a write ORs the bits.
        self._bit_words: dict[tuple[Table, int], list[ModbusTag]] = defaultdict(list)
        self._plain: list[ModbusTag] = []
        for tag in tags:
            if not tag.is_bit_table and tag.bit is not None:
                self._bit_words[(tag.table, tag.address)].append(tag)
            else:
                self._plain.append(tag)

    def update(self, values: dict[str, Value], changed: Collection[str] | None = None) -> None:
        """Write tag values into the image: all of them, or only the `changed` ones."""
        for tag in self._plain:
            if changed is not None and tag.name not in changed:
                continue
            value = values[tag.name]
            if tag.is_bit_table:
                self.bits[tag.table][tag.address] = bool(value)
            else:
                regs = encode(tag, value)
                self.words[tag.table][tag.address : tag.address + len(regs)] = regs
        for (table, address), group in self._bit_words.items():
            word = 0
            for tag in group:
                if values[tag.name]:
                    word |= 1 << (tag.bit or 0)
            self.words[table][address] = word

    def read(self, table: Table, address: int, count: int) -> list[int] | list[bool] | None:
        """`count` registers or bits from `address`, or None when any is outside the map."""
        if count < 1:
            return None
        if table in self.bits:
            bits = self.bits[table]
            return bits[address : address + count] if address + count <= len(bits) else None
        words = self.words[table]
        return words[address : address + count] if address + count <= len(words) else None

    def covers(self, tag: ModbusTag, table: Table, address: int, count: int) -> bool:
        """True when a request for `count` items at `address` of `table` touches `tag`."""
        return (
            tag.table == table
            and address < tag.address + tag.span
            and tag.address < address + count
        )
