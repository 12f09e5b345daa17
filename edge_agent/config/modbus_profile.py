"""Device profile for `protocol: modbus`: one machine type's register map.

Addresses are 0-based PDU addresses (Modbus Application Protocol §4.4), the number that goes on
the wire. Vendor documents often print 1-based "references" instead (40001 = holding register 0),
which is the most common commissioning mistake; the checks here recognise them and say what to
write instead. A profile's `addressing` says how its addresses are written:

- `auto` (default): 0-based, and numbers that look like a reference for their table are refused;
- `offset`: 0-based exactly as written, for maps that really live at 40000+ (SunSpec);
- `reference`: 1-based references as the manual prints them (40001 = holding 0), converted.

`ModbusTag.address` keeps the number as written; `ModbusTag.wire_address` is the PDU address.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

import wire
from edge_agent.config.issues import ERROR_TYPE, Issue, raise_issues, reraise_with
from edge_agent.config.names import Name
from edge_agent.config.tag_event import TagEvent, event_issues
from edge_agent.config.units import Duration
from edge_agent.drivers.modbus.types import (
    BIT_TABLES,
    MULTI_REGISTER_TYPES,
    REGISTER_SPAN,
    REGISTER_TABLES,
    Order,
    PointType,
    Table,
)

__all__ = [
    "BIT_TABLES",
    "MULTI_REGISTER_TYPES",
    "REGISTER_SPAN",
    "REGISTER_TABLES",
    "Addressing",
    "DataType",
    "MaxInterval",
    "ModbusDefaults",
    "ModbusProfile",
    "ModbusTag",
    "Order",
    "PollMs",
    "Table",
    "duplicate_issues",
    "validate_tag_list",
]

DataType = PointType
Addressing = Literal["auto", "offset", "reference"]
# At least 10 ms: faster polling only floods the bus; at most a day so a typo like 10000000 shows.
PollMs = Annotated[int, Field(ge=10, le=86_400_000)]

# How often a tag is sent at least, changed or not (its heartbeat, docs/devices.md): a second at
# least (more often is polling), a day at most (longer hides a dead device for a day).
MaxInterval = Annotated[Duration, Field(ge=timedelta(seconds=1), le=timedelta(days=1))]
DEFAULT_MAX_INTERVAL = timedelta(seconds=60)


# Modbus Application Protocol §6.3/§6.4: one read returns at most 125 registers, so a string
# longer than that could never be read in one request.
_MAX_STRING_REGISTERS = 125
_LAST_ADDRESS = 65535

# (first reference, last reference, table, digits): 1-based "Modicon" references.
_REFERENCES: tuple[tuple[int, int, str, str], ...] = (
    (400001, 465536, "holding", "4xxxxx"),
    (300001, 365536, "input", "3xxxxx"),
    (100001, 165536, "discrete", "1xxxxx"),
    (40001, 49999, "holding", "4xxxx"),
    (30001, 39999, "input", "3xxxx"),
    (10001, 19999, "discrete", "1xxxx"),
)
_COIL_REFERENCE = re.compile(r"^0\d{4,5}$")
# Every spelling of a reference per table under `addressing: reference`: (first, last), first
# being address 0. Coils are 0xxxx/0xxxxx, i.e. 1..65536 once the leading zeros are gone.
_REFERENCE_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "holding": ((40001, 49999), (400001, 465536)),
    "input": ((30001, 39999), (300001, 365536)),
    "discrete": ((10001, 19999), (100001, 165536)),
    "coil": ((1, 65536),),
}
# The two ways out of the reference check, added to its hint; a six-digit number is beyond 65535,
# so it can never be a real address and only the first applies.
_KEEP_REFERENCES = (
    "; or keep the manual's numbers with addressing: reference at the top of the profile"
)
_REALLY_THERE = (
    "; if the device really uses address {address} (SunSpec maps start at 40000), put "
    "addressing: offset at the top of the profile"
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _reference_issue(table: str, address: int) -> Issue | None:
    """Recognise a 1-based register reference written where a 0-based address belongs."""
    for first, last, ref_table, digits in _REFERENCES:
        if first <= address <= last:
            # Five-digit numbers are legal addresses too (some devices really map registers
            # there), so they are only taken for references when the table agrees.
            if len(digits) == 5 and table != ref_table:
                return None
            escapes = _KEEP_REFERENCES + (_REALLY_THERE if len(digits) == 5 else "")
            return Issue(
                ("address",),
                f"{address} looks like a {digits} reference",
                f"use table: {ref_table}, address: {address - first}"
                + escapes.format(address=address),
                address,
            )
    return None


def _reference_base(table: str, address: int) -> int | None:
    """The reference that stands for address 0 of `table`, if `address` is one of its spellings."""
    for first, last in _REFERENCE_RANGES[table]:
        if first <= address <= last:
            return first
    return None


def _not_a_reference(table: str, address: int) -> Issue:
    spellings = " or ".join(f"{a}..{b}" for a, b in _REFERENCE_RANGES[table])
    first = _REFERENCE_RANGES[table][0][0]
    # Not coils: every small number is a coil reference, and a small number here is far more
    # likely a 0-based address than a coil.
    other = next(
        (
            t
            for t in ("holding", "input", "discrete")
            if t != table and _reference_base(t, address) is not None
        ),
        None,
    )
    hint = (
        f"with addressing: reference, {table} addresses are written {spellings} "
        f"({first} = address 0)"
        + (f"; {address} refers to the {other} table: use table: {other}" if other else "")
        + "; for 0-based addresses set addressing: offset"
    )
    return Issue(("address",), f"{address} is not a {table} reference", hint, address)


def duplicate_issues(items: Any, key: str, what: str, where: str) -> list[Issue]:
    """Return one issue per repeated `key` value among raw mapping `items` (later ones named)."""
    issues: list[Issue] = []
    if not isinstance(items, list | tuple):
        return issues
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else getattr(item, key, None)
        if not isinstance(value, str):
            continue
        if value in first_seen:
            issues.append(
                Issue(
                    (index, key),
                    f"duplicate {what} {value!r} (first used at {where}[{first_seen[value]}])",
                    f"every {what} must be unique; rename one of them",
                    value,
                )
            )
        else:
            first_seen[value] = index
    return issues


class ModbusDefaults(_Model):
    """Values a tag inherits when it does not set them."""

    order: Order = "ABCD"
    poll_ms: PollMs = 1000
    max_interval: MaxInterval = DEFAULT_MAX_INTERVAL


class ModbusTag(_Model):
    """One value read from a device: where it lives and how to decode it."""

    name: Name
    table: Table
    # How `address` is written; the profile's `addressing` unless the tag sets its own. Declared
    # before `address` so the address validator can see it.
    addressing: Addressing = "auto"
    address: int = Field(ge=0)
    type: DataType
    length: int | None = None
    order: Order | None = None
    bit: int | None = None
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0
    unit: str = Field("", max_length=32)
    deadband: FiniteFloat | None = Field(None, ge=0)
    poll_ms: PollMs | None = None
    max_interval: MaxInterval | None = None
    # Plausible range in engineering units (after scale/offset): the hub alerts past it.
    limits: wire.Limits | None = None
    # Commands may set this tag (docs/commands.md); `min`/`max` bound what they may write, in
    # engineering units (before scale and offset are undone).
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    # Its changes are machine events too (an alarm bit, a fault code register).
    event: TagEvent | None = None

    @field_validator("address", mode="before")
    @classmethod
    def _coil_reference(cls, value: Any, info: ValidationInfo) -> Any:
        # The YAML reader keeps `00017` as text (YAML 1.1 would read octal); that spelling is a
        # 0xxxx coil reference: welcome under `addressing: reference`, taken at face value under
        # `offset`, a likely mistake otherwise.
        if isinstance(value, str) and _COIL_REFERENCE.match(value):
            number = int(value)
            if number >= 1 and info.data.get("addressing", "auto") == "auto":
                raise PydanticCustomError(
                    ERROR_TYPE,
                    "{message}",
                    {
                        "message": f"{value} looks like a 0xxxx coil reference",
                        "hint": f"use table: coil, address: {number - 1}, or keep the "
                        "manual's numbers with addressing: reference at the top of the profile",
                    },
                )
            return number
        return value

    @property
    def wire_address(self) -> int:
        """The 0-based PDU address that goes on the wire, however `address` was written."""
        if self.addressing == "reference":
            # Validation refused any address that is not a reference of this table.
            return self.address - (_reference_base(self.table, self.address) or 0)
        return self.address

    @property
    def register_count(self) -> int:
        """Registers (or bits, for coil/discrete) this tag occupies."""
        if self.table in BIT_TABLES:
            return 1
        if self.type == "string":
            return self.length or 1
        return REGISTER_SPAN[self.type]

    @model_validator(mode="after")
    def _check(self) -> ModbusTag:
        raise_issues("ModbusTag", self._issues())
        return self

    def _issues(self) -> list[Issue]:
        issues: list[Issue] = []
        given = self.model_fields_set
        address_issue = self._address_issue()
        if address_issue is not None:
            issues.append(address_issue)
        if self.table in BIT_TABLES:
            if self.type != "bool":
                issues.append(
                    Issue(
                        ("type",),
                        f"a {self.table} is a single bit, it cannot be read as {self.type}",
                        f"use type: bool, or table: holding/input for {self.type} values",
                        self.type,
                    )
                )
            for key in ("bit", "order", "length"):
                if key in given:
                    issues.append(
                        Issue(
                            (key,),
                            f"{key} does not apply to a {self.table} (a single bit)",
                            f"remove {key}",
                            getattr(self, key),
                        )
                    )
        else:
            issues.extend(self._register_issues())
        issues.extend(self._write_issues())
        issues.extend(event_issues(self.event, self.type))
        if self.type in ("bool", "string"):
            for key in ("scale", "offset", "deadband"):
                if key in given:
                    issues.append(
                        Issue(
                            (key,),
                            f"{key} applies to numbers, not to type {self.type}",
                            f"remove {key}",
                            getattr(self, key),
                        )
                    )
        elif self.scale == 0:
            issues.append(
                Issue(
                    ("scale",),
                    "scale 0 turns every reading into the offset",
                    "value = raw * scale + offset: use 1 for no scaling, 0.1 for tenths",
                    0,
                )
            )
        last = self.wire_address + self.register_count - 1
        if address_issue is None and last > _LAST_ADDRESS:
            issues.append(
                Issue(
                    ("address",),
                    f"{self.type} at {self.address} spans registers up to {last}, "
                    f"beyond {_LAST_ADDRESS}",
                    "check the address against the register map",
                    self.address,
                )
            )
        return issues

    def _write_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        if self.writable and self.table in ("input", "discrete"):
            issues.append(
                Issue(
                    ("writable",),
                    f"{self.table} {'registers are' if self.table == 'input' else 'inputs are'} "
                    "read-only in Modbus",
                    "writable tags live in table: holding (registers) or table: coil (bits); "
                    "remove writable, or check the register map",
                    True,
                )
            )
        issues += write_bound_issues(self.writable, self.min, self.max, self.type)
        return issues

    def _address_issue(self) -> Issue | None:
        """What is wrong with `address` under the tag's addressing, if anything."""
        if self.addressing == "reference":
            if _reference_base(self.table, self.address) is None:
                return _not_a_reference(self.table, self.address)
            return None
        if self.addressing == "auto":
            reference = _reference_issue(self.table, self.address)
            if reference is not None:
                return reference
        if self.address > _LAST_ADDRESS:
            return Issue(
                ("address",),
                f"{self.address} is beyond {_LAST_ADDRESS}, the last Modbus address",
                "addresses are 0-based PDU addresses 0..65535 as in the register map's hex "
                "column; a 1-based reference N is address N-1",
                self.address,
            )
        return None

    def _register_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        given = self.model_fields_set
        if self.type == "bool" and self.bit is None:
            issues.append(
                Issue(
                    ("bit",),
                    f"type bool on a {self.table} register needs bit",
                    "add bit: 0..15 to pick one bit of the 16-bit register (0 = least "
                    "significant), or use table: coil/discrete for single-bit data",
                    None,
                )
            )
        if self.bit is not None:
            if self.type in ("int16", "uint16"):
                issues.append(
                    Issue(
                        ("bit",),
                        f"bit reads one bit of the register, which is a bool, not {self.type}",
                        f"use type: bool with bit: {self.bit}",
                        self.bit,
                    )
                )
            elif self.type != "bool":
                span = self.register_count
                issues.append(
                    Issue(
                        ("bit",),
                        f"bit needs a 16-bit register, but {self.type} spans {span} registers",
                        "remove bit, or read one register as type: bool with bit: 0..15",
                        self.bit,
                    )
                )
            if not 0 <= self.bit <= 15:
                issues.append(
                    Issue(
                        ("bit",),
                        f"bit {self.bit} is outside 0..15",
                        "bits of a 16-bit register are numbered 0 (least significant) to 15",
                        self.bit,
                    )
                )
        if self.type == "string":
            if self.length is None:
                issues.append(
                    Issue(
                        ("length",),
                        "type string needs length",
                        "add length: the number of registers (each register holds 2 characters)",
                        None,
                    )
                )
            elif not 1 <= self.length <= _MAX_STRING_REGISTERS:
                issues.append(
                    Issue(
                        ("length",),
                        f"length {self.length} is outside 1..{_MAX_STRING_REGISTERS} registers",
                        "one Modbus read returns at most 125 registers "
                        "(Modbus Application Protocol §6.3)",
                        self.length,
                    )
                )
            if self.order in ("CDAB", "DCBA"):
                issues.append(
                    Issue(
                        ("order",),
                        f"order {self.order} is not a string byte order",
                        "use ABCD (characters as sent) or BADC (two characters swapped in each "
                        "register)",
                        self.order,
                    )
                )
        else:
            span = REGISTER_SPAN[self.type]
            if self.length is not None and self.length != span:
                issues.append(
                    Issue(
                        ("length",),
                        f"{self.type} spans exactly {span} register{'s' if span > 1 else ''}, "
                        f"not length: {self.length}",
                        f"remove length; the type fixes the span ({self.type} = {span} x 16 bit), "
                        "or use type: string for text",
                        self.length,
                    )
                )
            if span == 1 and "order" in given:
                issues.append(
                    Issue(
                        ("order",),
                        f"order has no effect on {self.type}, a single register",
                        "remove order; it applies to 32- and 64-bit types "
                        "(int32, uint32, float32, int64, uint64, float64)",
                        self.order,
                    )
                )
        return issues


def write_bound_issues(
    writable: bool, low: float | None, high: float | None, type_: str | None = None
) -> list[Issue]:
    """What is wrong with a tag's `min`/`max` (the range commands may write), for every
    protocol: they need `writable`, a number type (`type_` None: decided by the device), and
    min ≤ max."""
    issues: list[Issue] = []
    for key, bound in (("min", low), ("max", high)):
        if bound is None:
            continue
        if not writable:
            issues.append(
                Issue(
                    (key,),
                    f"{key} bounds what commands may write, but the tag is not writable",
                    f"add writable: true, or remove {key} (for alert limits use limits:)",
                    bound,
                )
            )
        elif type_ in ("bool", "string"):
            issues.append(
                Issue((key,), f"{key} applies to numbers, not to type {type_}", f"remove {key}",
                      bound)
            )  # fmt: skip
    if low is not None and high is not None and low > high:
        issues.append(
            Issue(("max",), f"max {high:g} is below min {low:g}",
                  "swap them: min is the lowest value a command may write", high)
        )  # fmt: skip
    return issues


def validate_tag_list(title: str, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a profile's tags, adding duplicate names and an empty list to the problems."""
    # Checked on the raw list so duplicates are reported even when other tags are broken.
    problems = duplicate_issues(value, "name", "tag name", "tags")
    if isinstance(value, list | tuple) and not value:
        # Not Field(min_length=1): pydantic would also count broken tags as missing ones.
        problems.append(Issue((), "a profile needs at least one tag", "add tags: - name: ..."))
    try:
        tags = handler(value)
    except ValidationError as exc:
        reraise_with(title, exc, problems)
    raise_issues(title, problems)
    return tags


class ModbusProfile(_Model):
    """A machine type spoken to over Modbus: its register map and decoding rules."""

    profile: Name
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    protocol: Literal["modbus"]
    source: str = Field(min_length=1)
    # How the tags' addresses are written (module docstring); declared before `tags` so the tag
    # validator below can hand it to each tag.
    addressing: Addressing = "auto"
    defaults: ModbusDefaults = ModbusDefaults()
    tags: tuple[ModbusTag, ...]

    @field_validator("tags", mode="wrap")
    @classmethod
    def _tags(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        addressing = info.data.get("addressing", "auto")
        if addressing != "auto" and isinstance(value, list | tuple):
            # A tag's own `addressing` wins over the profile's.
            value = [
                {"addressing": addressing, **tag} if isinstance(tag, dict) else tag for tag in value
            ]
        return validate_tag_list("ModbusProfile", value, handler)
