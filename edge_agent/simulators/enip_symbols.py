"""The tag list of a simulated Logix controller: cpppo's Logix Message Router, taught the Symbol
Object's `Get_Instance_Attribute_List` (class 0x6B, service 0x55) that `edge-agent browse` asks.

cpppo serves Read/Write Tag but not the tag list. A Logix controller answers service 0x55 on
class 0x6B from an instance number on: each symbol as its instance id (UDINT), then the
attributes asked, in the order asked (pylogix asks 1 name: UINT length + characters; 2 symbol
type: UINT, low 12 bits the CIP type, bits 13-14 the array's dimension count; 8 array
dimensions: three UDINTs; pycomm3 also 3, 5, 6 and 10), and status 0x06 when more symbols follow
than fit the reply. Controller scope lists its programs too
(`Program:MainProgram`); a path starting with the program's name (symbolic segment) lists that
program's tags. That is the wire format pylogix's `GetTagList` parses (`eip._parse_packet`,
`lgx_tag.Tag.parse`).

Used two ways, both with cpppo's own command line (`--address`, `Name=REAL`, …):

    python -m edge_agent.simulators.enip_symbols --address 127.0.0.1:0 Speed=REAL Data=DINT[4]

and by the simulator's child (`enip_child.py`) through `message_router_class`. cpppo stores a
UDT's members as flat tags (`Filler.Motor.Current`); a controller would list `Filler` with its
template (class 0x6C), which is not served, so such members are left out of the list.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["PROGRAM_SYMBOL_TYPE", "Symbol", "list_reply", "message_router_class", "symbols"]

SERVICE = 0x55  # Get_Instance_Attribute_List
SYMBOL_CLASS = 0x6B
PROGRAM_SYMBOL_TYPE = 0x1068  # what a Logix controller reports for a program's entry
_MAX_REPLY = 400  # bytes of symbols per reply, within cpppo's packet room (Logix.MAX_BYTES 488)

# (instance id, name, symbol type, array length or 0)
Symbol = tuple[int, str, int, int]


def symbols(tags: Iterable[tuple[str, int, int]], program: str | None) -> list[Symbol]:
    """The symbols of one scope (`program` None: the controller's, with its programs) from cpppo's
    tags as (name, CIP type code, array length or 0), numbered from 1 in the order given."""
    listed: list[tuple[str, int, int]] = []
    programs: list[str] = []
    for name, type_code, length in tags:
        scope, _, local = name.partition(".") if name.startswith("Program:") else ("", "", name)
        if scope and scope not in programs:
            programs.append(scope)
        if "." in local:
            continue  # a flattened UDT member: its template is not served
        if (scope or None) == program:
            listed.append((local, type_code | (0x2000 if length else 0), length))
    if program is None:
        listed += [(name, PROGRAM_SYMBOL_TYPE, 0) for name in programs]
    return [(i, name, kind, length) for i, (name, kind, length) in enumerate(listed, start=1)]


def _attribute(symbol: Symbol, attribute: int) -> bytes:
    _, name, kind, length = symbol
    encoded = name.encode()
    values = {
        1: struct.pack("<H", len(encoded)) + encoded,  # symbol name
        2: struct.pack("<H", kind),  # symbol type
        3: struct.pack("<I", 0),  # symbol address (memory; nothing a client can use here)
        5: struct.pack("<I", 0),  # symbol object address
        6: struct.pack("<I", 0),  # software control
        8: struct.pack("<III", length, 0, 0),  # array dimensions
        10: struct.pack("<B", 0),  # external access: read/write
    }
    return values[attribute]


def list_reply(
    listed: list[Symbol], start: int, attributes: tuple[int, ...] = (1, 2, 8)
) -> tuple[int, bytes]:
    """(CIP general status, reply data) for the symbols from instance `start` on, each with the
    `attributes` asked in the order asked: 0x06 when more follow than fit one reply, 0x14
    (attribute not supported) for one this server does not know."""
    out = b""
    for symbol in listed:
        if symbol[0] < start:
            continue
        try:
            entry = struct.pack("<I", symbol[0]) + b"".join(
                _attribute(symbol, a) for a in attributes
            )
        except KeyError:
            return 0x14, b""
        if out and len(out) + len(entry) > _MAX_REPLY:
            return 0x06, out
        out += entry
    return 0x00, out


def message_router_class() -> Any:
    """cpppo's Logix Message Router that also answers the tag list (cpppo imported here: it is a
    development dependency, and this runs in the process that serves the tags)."""
    from cpppo.server.enip import device, logix  # noqa: PLC0415
    from cpppo.server.enip import main as enip_main  # noqa: PLC0415
    from cpppo.server.enip.parser import EPATH, UINT, USINT, move_if  # noqa: PLC0415

    context = "get_instance_attribute_list"

    def tags_now() -> list[tuple[str, int, int]]:
        found: list[tuple[str, int, int]] = []
        for name, entry in dict.items(enip_main.tags):
            attribute = entry.attribute
            length = 0 if attribute.scalar else len(attribute)
            found.append((str(name), int(attribute.parser.tag_type), length))
        return found

    class SymbolListing(logix.Logix):  # type: ignore[misc]
        """The Logix Message Router, plus Get_Instance_Attribute_List on the Symbol Object."""

        def request(self, data: Any, addr: Any = None) -> bool:
            if data.get("service") != SERVICE:
                return bool(super().request(data, addr=addr))
            segments = data.path["segment"]
            program = next((s["symbolic"] for s in segments if "symbolic" in s), None)
            classes = [s["class"] for s in segments if "class" in s]
            start = next((s["instance"] for s in segments if "instance" in s), 0)
            data.service |= 0x80
            if classes != [SYMBOL_CLASS]:
                status, payload = 0x08, b""  # service not supported by that object
            else:
                listed = symbols(tags_now(), program)
                known = program is None or any(n == program for _, n, _, _ in symbols(
                    tags_now(), None))  # fmt: skip
                asked = tuple(int(a) for a in data[context].get("attributes", ()))
                status, payload = list_reply(listed, start, asked) if known else (0x05, b"")
            data.status = status
            data.input = bytearray(struct.pack("<BBBB", data.service, 0, status, 0) + payload)
            return True

    # The request's shape: service, path, then the attribute ids as Get_Attribute_List has them.
    def parser() -> Any:
        srvc = USINT(context="service")
        srvc[True] = path = EPATH(context="path")
        path[None] = numr = UINT("number", context=context, extension=".number")
        attr = UINT("attr", context=context, extension=".UINT")
        attr[None] = move_if("attr", source=f".{context}.UINT",
                             destination=f"{context}.attributes",
                             initializer=lambda **_: [])  # fmt: skip
        attr[None] = device.state("attr", terminal=True)
        numr[True] = device.dfa("attributes", initial=attr, repeat=f".{context}.number",
                                terminal=True)  # fmt: skip
        return srvc

    if SERVICE not in device.Object.service:
        SymbolListing.register_service_parser(
            number=SERVICE, name="Get Instance Attribute List", short=context, machine=parser()
        )
    return SymbolListing


def main(argv: list[str]) -> None:
    """cpppo's Logix simulator (its command line) answering the tag list too."""
    from cpppo.server.enip import main as enip_main  # noqa: PLC0415

    sys.exit(enip_main.main(argv=argv, message_router_class=message_router_class()))


if __name__ == "__main__":
    main(sys.argv[1:])
