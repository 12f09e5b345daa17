"""Device profile for `protocol: s7`: a Siemens S7 machine's tags by absolute address.

    tags:
      - {name: speed, address: DB10.DBD4, type: real, unit: m/min}
      - {name: running, address: DB10.DBX0.3, type: bool}
      - {name: recipe, address: DB5.DBB10, type: string, length: 20}

Addresses and types are written as in TIA Portal (edge_agent/drivers/s7/address.py); an address
whose width does not fit the type is refused with the address to write instead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

import wire
from edge_agent.config.issues import ERROR_TYPE, Issue, raise_issues
from edge_agent.config.modbus_profile import (
    DEFAULT_MAX_INTERVAL,
    MaxInterval,
    PollMs,
    validate_tag_list,
    write_bound_issues,
)
from edge_agent.config.names import Name
from edge_agent.drivers.s7.address import (
    MAX_STRING,
    AddressError,
    S7Address,
    S7Type,
    parse_address,
    width_problem,
)

__all__ = ["S7Defaults", "S7Profile", "S7Tag"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class S7Defaults(_Model):
    """Values a tag inherits when it does not set them."""

    poll_ms: PollMs = 1000
    max_interval: MaxInterval = DEFAULT_MAX_INTERVAL


class S7Tag(_Model):
    """One value of the PLC: its address, its S7 type and how to scale it."""

    name: Name
    address: str = Field(min_length=1)
    type: S7Type
    # Characters a STRING holds (its declared length, `String[20]`); strings only.
    length: int | None = Field(None, ge=1, le=MAX_STRING)
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0
    unit: str = Field("", max_length=32)
    deadband: FiniteFloat | None = Field(None, ge=0)
    poll_ms: PollMs | None = None
    max_interval: MaxInterval | None = None
    limits: wire.Limits | None = None
    # Commands may write this tag (docs/commands.md), numbers within `min`/`max` (engineering
    # units, before scale and offset are undone).
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            parse_address(value)
        except AddressError as exc:
            raise PydanticCustomError(
                ERROR_TYPE, "{message}", {"message": str(exc), "hint": exc.hint}
            ) from None
        return value

    @property
    def parsed(self) -> S7Address:
        """The address, parsed (valid: checked when the tag was loaded)."""
        return parse_address(self.address)

    @model_validator(mode="after")
    def _fits(self) -> S7Tag:
        issues: list[Issue] = []
        problem = width_problem(self.parsed, self.type)
        if problem is not None:
            issues.append(Issue(("address",), *problem))
        if self.length is not None and self.type != "string":
            issues.append(Issue(("length",), "only a string has a length", "remove length"))
        if self.deadband is not None and self.type in ("bool", "string"):
            issues.append(Issue(("deadband",), f"a {self.type} has no deadband", "remove it"))
        if self.writable and self.parsed.area == "I":
            issues.append(Issue(("writable",), "process inputs (I/E) are read-only",
                                "write to a DB, M or Q address, or remove writable"))  # fmt: skip
        issues += write_bound_issues(self.writable, self.min, self.max, self.type)
        raise_issues("S7Tag", issues)
        return self


class S7Profile(_Model):
    """A machine type spoken to over S7 (ISO-on-TCP): its tags by absolute address."""

    profile: Name
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    protocol: Literal["s7"]
    source: str = Field(min_length=1)
    defaults: S7Defaults = S7Defaults()
    tags: tuple[S7Tag, ...]

    @field_validator("tags", mode="wrap")
    @classmethod
    def _tags(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_tag_list("S7Profile", value, handler)
