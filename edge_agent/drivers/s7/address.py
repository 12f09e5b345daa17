"""S7 absolute addresses as TIA Portal and Step 7 write them, and the values behind them (pure).

    DB10.DBX0.3   bit 3 of byte 0 of data block 10      bool
    DB10.DBB4     byte 4                                byte; the first byte of an lreal, a string
    DB10.DBW4     the word at byte 4                    word, int, uint
    DB10.DBD4     the double word at byte 4             dword, dint, udint, real
    M0.1 MB2 MW20 MD24                                  bit memory (German: the same)
    I0.1 IB0 IW2 ID4 / E0.1 EB0 …                       process inputs (German: E)
    Q0.0 QB0 QW2 QD4 / A0.0 AB0 …                       process outputs (German: A)

A leading `%` (TIA's spelling) is accepted, letters in either case. Everything is big-endian, as
in the PLC. An S7 string is a header (maximum length, current length) and the characters.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "S7_TYPES",
    "AddressError",
    "S7Address",
    "S7Type",
    "byte_size",
    "decode",
    "encode",
    "parse_address",
    "width_problem",
]

Area = Literal["DB", "M", "I", "Q"]
Width = Literal["X", "B", "W", "D"]
S7Type = Literal[
    "bool", "byte", "word", "dword", "int", "dint", "uint", "udint", "real", "lreal", "string"
]
S7_TYPES: tuple[S7Type, ...] = (
    "bool", "byte", "word", "dword", "int", "dint", "uint", "udint", "real", "lreal", "string",
)  # fmt: skip
MAX_DB = 65535
MAX_BYTE = 65535
MAX_STRING = 254  # an S7 STRING holds at most 254 characters

_STRUCT = {
    "byte": ">B", "word": ">H", "dword": ">I", "int": ">h", "dint": ">i", "uint": ">H",
    "udint": ">I", "real": ">f", "lreal": ">d",
}  # fmt: skip
# Which address width each type is written with (lreal and string by their first byte).
_WIDTH_OF: dict[S7Type, Width] = {
    "bool": "X", "byte": "B", "lreal": "B", "string": "B", "word": "W", "int": "W",
    "uint": "W", "dword": "D", "dint": "D", "udint": "D", "real": "D",
}  # fmt: skip
_LETTER = {"X": "X", "B": "B", "W": "W", "D": "D"}
_AREAS: dict[str, Area] = {"M": "M", "I": "I", "E": "I", "Q": "Q", "A": "Q"}

_DB = re.compile(r"^DB(\d+)\.DB([XBWD])(\d+)(?:\.(\d+))?$")
_PLAIN = re.compile(r"^([MIEQA])([BWD]?)(\d+)(?:\.(\d+))?$")
_DB_SHORT = re.compile(r"^DB(\d+)\.([XBWD])(\d+)(?:\.(\d+))?$")


class AddressError(ValueError):
    """An address that names nothing an S7 PLC has; `hint` says what to write."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class S7Address:
    """Where a value lives: area (DB number for data blocks), byte offset, bit, width letter."""

    area: Area
    db: int
    byte: int
    bit: int | None
    width: Width

    def __str__(self) -> str:
        bit = "" if self.bit is None else f".{self.bit}"
        if self.area == "DB":
            return f"DB{self.db}.DB{self.width}{self.byte}{bit}"
        return f"{self.area}{'' if self.width == 'X' else self.width}{self.byte}{bit}"


def parse_address(text: str) -> S7Address:
    """The address `text` names; AddressError with a hint otherwise."""
    raw = text.strip()
    spelled = raw.removeprefix("%").upper()
    if match := _DB.match(spelled):
        db, letter, byte, bit = match.groups()
        return _checked(raw, "DB", int(db), letter, int(byte), bit=bit)
    if match := _DB_SHORT.match(spelled):
        db, letter, byte, bit = match.groups()
        fixed = f"DB{db}.DB{letter}{byte}" + (f".{bit}" if bit is not None else "")
        raise AddressError(f"{raw!r} is not an S7 address", f"write {fixed}")
    if match := _PLAIN.match(spelled):
        area, letter, byte, bit = match.groups()
        return _checked(raw, _AREAS[area], 0, letter or "X", int(byte), bit=bit)
    if spelled.isdigit():
        raise AddressError(
            f"{raw!r} is a number, not an S7 address",
            "S7 addresses name an area: DB10.DBW4, MW20, I0.1 (a 4xxxx number is Modbus)",
        )
    raise AddressError(
        f"{raw!r} is not an S7 address",
        "write it as in TIA Portal: DB10.DBD4, DB10.DBX0.3, MW20, I0.1, Q0.0",
    )


def _checked(
    raw: str, area: Area, db: int, letter: str, byte: int, *, bit: str | None
) -> S7Address:
    width: Width = "X" if letter == "X" else _LETTER[letter]  # type: ignore[assignment]
    if area == "DB" and not 1 <= db <= MAX_DB:
        raise AddressError(f"{raw!r}: data block {db} does not exist", "DB numbers run 1–65535")
    if byte > MAX_BYTE:
        raise AddressError(f"{raw!r}: byte {byte} is past 65535", "check the byte offset")
    if width == "X":
        if bit is None:
            example = f"DB{db}.DBX{byte}.0" if area == "DB" else f"{area}{byte}.0"
            raise AddressError(f"{raw!r} names a bit without saying which", f"write {example}")
        if int(bit) > 7:
            raise AddressError(f"{raw!r}: a byte has bits 0–7", "bit numbers run 0 to 7")
        return S7Address(area, db, byte, int(bit), "X")
    if bit is not None:
        raise AddressError(
            f"{raw!r}: only a bit address (X) takes a bit number",
            f"write {'DB' + str(db) + '.DBX' if area == 'DB' else area}{byte}.{bit} for the bit",
        )
    return S7Address(area, db, byte, None, width)


def width_problem(address: S7Address, type_: S7Type) -> tuple[str, str] | None:
    """Why `type_` cannot be read at `address`, and the address to write; None if it can."""
    wanted = _WIDTH_OF[type_]
    if wanted == address.width:
        return None
    fixed = S7Address(address.area, address.db, address.byte, 0 if wanted == "X" else None, wanted)
    size = {"X": "a bit", "B": "a byte", "W": "a word (2 bytes)", "D": "a double word (4 bytes)"}
    if type_ in ("lreal", "string"):
        need = "an LREAL (8 bytes)" if type_ == "lreal" else "a STRING"
        return (
            f"{address} is {size[address.width]}; {need} is addressed by its first byte",
            f"write {fixed}",
        )
    return f"{address} is {size[address.width]}, but {type_} is {size[wanted]}", f"write {fixed}"


def byte_size(type_: S7Type, length: int = MAX_STRING) -> int:
    """Bytes a value of `type_` takes (a string: its 2-byte header and `length` characters)."""
    if type_ == "bool":
        return 1
    if type_ == "string":
        return 2 + length
    return struct.calcsize(_STRUCT[type_])


def decode(type_: S7Type, data: bytes, bit: int | None = None) -> bool | int | float | str:
    """The value in `data` (exactly `byte_size` bytes, big-endian as the PLC keeps it)."""
    if type_ == "bool":
        return bool(data[0] >> (bit or 0) & 1)
    if type_ == "string":
        capacity, used = data[0], data[1]
        return data[2 : 2 + min(used, capacity, len(data) - 2)].decode("latin-1")
    value: int | float = struct.unpack(_STRUCT[type_], data)[0]
    return value


_RANGES = {
    "byte": (0, 0xFF), "word": (0, 0xFFFF), "dword": (0, 0xFFFF_FFFF), "int": (-(2**15), 2**15 - 1),
    "dint": (-(2**31), 2**31 - 1), "uint": (0, 0xFFFF), "udint": (0, 0xFFFF_FFFF),
}  # fmt: skip


def encode(type_: S7Type, value: bool | int | float | str, length: int = MAX_STRING) -> bytes:
    """The bytes the PLC keeps for `value` (not for bool: a bit is set inside its byte);
    ValueError naming the type's range when it does not fit."""
    if type_ == "string":
        text = str(value).encode("latin-1", errors="strict")
        if len(text) > length:
            raise ValueError(f"{len(text)} characters do not fit a String[{length}]")
        return bytes([length, len(text)]) + text
    if type_ in ("real", "lreal"):
        return struct.pack(_STRUCT[type_], float(value))
    number = round(float(value))
    low, high = _RANGES[type_]
    if not low <= number <= high:
        raise ValueError(f"{number} does not fit {type_.upper()} ({low} … {high})")
    return struct.pack(_STRUCT[type_], number)
