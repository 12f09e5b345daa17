"""Device profile for `protocol: s7`: a Siemens S7 machine's tags by absolute address.

    tags:
      - {name: speed, address: DB10.DBD4, type: real, unit: m/min}
      - {name: running, address: DB10.DBX0.3, type: bool}
      - {name: recipe, address: DB5.DBB10, type: string, length: 20}

Addresses and types are written as in TIA Portal (edge_agent/drivers/s7/address.py); an address
whose width does not fit the type is refused with the address to write instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge_agent.config.issues import ERROR_TYPE, Issue, raise_issues
from edge_agent.config.polled_profile import PolledProfileHead, PolledTag
from edge_agent.drivers.s7.address import (
    MAX_STRING,
    AddressError,
    S7Address,
    S7Type,
    parse_address,
    width_problem,
)

__all__ = ["S7Profile", "S7Tag"]


class S7Tag(PolledTag):
    """One value of the PLC: its address, its S7 type and how to scale it."""

    address: str = Field(min_length=1)
    type: S7Type
    # Characters a STRING holds (its declared length, `String[20]`); strings only.
    length: int | None = Field(None, ge=1, le=MAX_STRING)

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
        if self.writable and self.parsed.area == "I":
            issues.append(Issue(("writable",), "process inputs (I/E) are read-only",
                                "write to a DB, M or Q address, or remove writable"))  # fmt: skip
        issues += self.common_issues(self.type)
        raise_issues("S7Tag", issues)
        return self


class S7Profile(PolledProfileHead):
    """A machine type spoken to over S7 (ISO-on-TCP): its tags by absolute address."""

    protocol: Literal["s7"]
    tags: tuple[S7Tag, ...]
