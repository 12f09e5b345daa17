"""A Logix controller's tag list (pylogix's `GetTagList` pieces) and the profile skeleton made
from it, for `edge-agent browse` on an EtherNet/IP device.

The controller answers the Symbol Object's Get_Instance_Attribute_List (class 0x6B, service 0x55):
controller-scoped tags and the programs, then each program's tags. pylogix reads the templates of
UDT tags (class 0x6C) and reports their members; the skeleton addresses those members by path
(`Filler.Motor.Current`), as a profile must: UDTs are not read whole. Arrays become one tag per
element (`Heads[0]`) up to a limit, and what has no profile type is left out with the reason, so
the technician sees what was skipped rather than wondering.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pylogix import PLC

from edge_agent.drivers.enip.driver import EnipEndpoint
from edge_agent.errors import DeviceUnavailable

__all__ = ["ListedTag", "TagListing", "list_tags", "profile_skeleton", "skeleton_entries"]

# pylogix's type names (its CIPTypes; SSTRING is its "STRING" 0xDA, a Logix STRING a UDT of that
# name) → the profile's.
_PROFILE_TYPE = {"BOOL": "bool", "SINT": "sint", "INT": "int", "DINT": "dint", "LINT": "lint",
                 "USINT": "usint", "UINT": "uint", "UDINT": "udint", "REAL": "real",
                 "LREAL": "lreal", "STRING": "string"}  # fmt: skip
_PROGRAM_ENTRY = re.compile(r"^Program:[A-Za-z_][A-Za-z0-9_]*$")
_MAX_UDT_DEPTH = 8  # a UDT holding itself through a chain would otherwise never end


@dataclass(frozen=True, slots=True)
class ListedTag:
    """One tag of the controller as it lists it: name (program tags `Program:X.Tag`), type name,
    array dimensions (0: not an array) and first dimension's length, and for a UDT its members."""

    name: str
    data_type: str
    dimensions: int = 0
    length: int = 0
    struct: bool = False
    members: tuple[ListedTag, ...] | None = None  # None: not a UDT, or its template unknown

    @property
    def shown_type(self) -> str:
        """The type as Studio 5000 writes it: `REAL`, `DINT[8]`, `Filler_t`."""
        kind = self.data_type or "?"
        return f"{kind}[{self.length}]" if self.dimensions == 1 else kind + (
            f"[{self.length},…]" if self.dimensions else "")  # fmt: skip


@dataclass(slots=True)
class TagListing:
    """What the controller listed, scope by scope."""

    tags: list[ListedTag] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)


def _udt_members(udts: dict[int, Any], tag: Any, depth: int) -> tuple[ListedTag, ...] | None:
    udt = udts.get(tag.DataTypeValue) if tag.Struct else None
    if udt is None or depth > _MAX_UDT_DEPTH:
        return None
    members = []
    for member in udt.Fields:
        # Logix packs a UDT's BOOLs into hidden SINTs named ZZZZZZZZZZ…; the BOOLs are listed too.
        if member.TagName.startswith("ZZZZZZZZZZ") or member.Internal:
            continue
        members.append(_listed(udts, member, member.TagName, depth + 1))
    # No member at all: the template did not come back as pylogix parses it; the tag is then
    # reported as a UDT without members rather than silently dropped.
    return tuple(members) or None


def _listed(udts: dict[int, Any], tag: Any, name: str, depth: int = 0) -> ListedTag:
    return ListedTag(name, str(tag.DataType or ""), int(tag.Array), int(tag.Size),
                     bool(tag.Struct), _udt_members(udts, tag, depth))  # fmt: skip


def _checked(call: Callable[[], Any], endpoint: EnipEndpoint, device: str, what: str) -> list[Any]:
    try:
        response = call()
    except (struct.error, IndexError, ValueError) as exc:
        # pylogix parses the reply by offsets: an answer of another shape (cpppo's own server
        # ends the session on a service it does not know) fails there.
        status = f"not supported: the answer was no tag list ({exc})"
    except OSError as exc:
        status = str(exc)
    else:
        status = str(response.Status)
        if status == "Success" and isinstance(response.Value, list):
            return list(response.Value)
    if "not supported" in status.lower():
        raise DeviceUnavailable(
            f"{endpoint}: the controller does not list its tags ({what}: {status})",
            device=device,
            hint="it may not be a Logix controller (Micro800 and PLC-5 have no tag list); "
            "write the profile from the PLC project instead (docs/enip.md)",
        )
    raise DeviceUnavailable(
        f"{endpoint}: {what}: {status}",
        device=device,
        hint="check the address, port and slot in the config, and that the controller is on "
        "(edge-agent probe reads it the same way)",
    )


def list_tags(
    endpoint: EnipEndpoint, device: str, progress: Callable[[str], None] = lambda _: None
) -> TagListing:
    """Every tag of the controller at `endpoint`, controller scope first, then each program's;
    `progress` hears of each scope as it is listed. DeviceUnavailable (with the next step) when
    the controller does not answer or does not list its tags."""
    with _plc(endpoint) as plc:
        progress("listing the controller's tags…")
        # Scope by scope (not GetTagList(allTags=True)) so a long listing shows progress.
        listed = _checked(
            lambda: plc.GetTagList(allTags=False), endpoint, device, "controller tags"
        )
        programs = [str(p) for p in plc.ProgramNames]
        udts: dict[int, Any] = dict(plc.UDT)
        result = TagListing(programs=programs)
        scopes: list[tuple[str, list[Any]]] = [("controller", listed)]
        for number, program in enumerate(programs, start=1):
            progress(f"listing {program} ({number}/{len(programs)})…")
            got = _checked(
                functools.partial(plc.GetProgramTagList, program), endpoint, device, program
            )
            udts.update(plc.UDT)  # pylogix forgets the previous scope's templates
            scopes.append((program, got))
        for _, tags in scopes:
            for tag in tags:
                name = str(tag.TagName)
                if _PROGRAM_ENTRY.match(name):
                    continue  # the program itself, listed among the controller's symbols
                result.tags.append(_listed(udts, tag, name))
    progress(f"{len(result.tags)} tags in {1 + len(programs)} scopes")
    return result


@contextlib.contextmanager
def _plc(endpoint: EnipEndpoint) -> Iterator[Any]:
    plc = PLC(endpoint.host, slot=endpoint.slot, timeout=endpoint.timeout_s, port=endpoint.port)
    # pylogix's constructor makes two sockets it never closes (see driver.connect).
    for unused in (plc.conn.Socket, plc.conn.msg_socket):
        with contextlib.suppress(OSError):
            unused.close()
    try:
        yield plc
    finally:
        plc.Close()


def skeleton_entries(
    tag: ListedTag, max_elements: int, path: str | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(controller tag name, profile type) for every value `tag` holds — UDT members by path,
    array elements by index up to `max_elements` — and why anything was left out."""
    path = path or tag.name
    entries: list[tuple[str, str]] = []
    skipped: list[str] = []
    if tag.dimensions > 1:
        skipped.append(f"{path} {tag.shown_type}: a {tag.dimensions}-dimensional array; "
                       f"add elements as {path}[i,j]")  # fmt: skip
        return entries, skipped
    targets = [path]
    if tag.dimensions == 1:
        targets = [f"{path}[{i}]" for i in range(min(tag.length, max_elements))]
        if tag.length > max_elements:
            skipped.append(f"{path}[{max_elements}..{tag.length - 1}]: past --max-elements "
                           f"{max_elements}")  # fmt: skip
    kind = _PROFILE_TYPE.get(tag.data_type)  # before members: a Logix STRING is a UDT too
    for target in targets:
        if kind is not None:
            entries.append((target, kind))
        elif tag.members is not None:
            for member in tag.members:
                more, why = skeleton_entries(member, max_elements, f"{target}.{member.name}")
                entries += more
                skipped += why
        else:
            reason = (
                f"a UDT ({tag.data_type or 'type unknown'}) whose members were not listed; "
                f"add them by path ({target}.Member)"
                if tag.struct
                else f"type {tag.data_type or 'unknown'} has no profile type"
            )
            skipped.append(f"{target}: {reason}")
            break  # the same reason for every element
    return entries, skipped


def _profile_name(tag: str) -> str:
    if tag.startswith("Program:"):
        tag = tag[len("Program:") :]
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", tag).strip("_").lower()
    return (cleaned or "tag")[:64]


def profile_skeleton(
    profile: str, endpoint: EnipEndpoint, listing: TagListing, max_elements: int
) -> tuple[dict[str, Any], list[str]]:
    """A `protocol: enip` profile for every listed value, and what was left out (and why)."""
    tags: list[dict[str, Any]] = []
    skipped: list[str] = []
    used: set[str] = set()
    for listed in listing.tags:
        entries, why = skeleton_entries(listed, max_elements)
        skipped += why
        for tag, kind in entries:
            name = base = _profile_name(tag)
            suffix = 2
            while name in used:
                name, suffix = f"{base[:60]}_{suffix}", suffix + 1
            used.add(name)
            tags.append({"name": name, "tag": tag, "type": kind})
    skeleton = {
        "profile": profile,
        "vendor": "TODO vendor",
        "model": "TODO model",
        "protocol": "enip",
        "source": f"tag list of {endpoint} on {dt.datetime.now(dt.UTC):%Y-%m-%d}",
        "defaults": {"poll_ms": 1000},
        "tags": tags,
    }
    return skeleton, skipped
