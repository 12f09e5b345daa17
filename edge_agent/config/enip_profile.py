"""Device profile for `protocol: enip`: an Allen-Bradley Logix controller's tags by name.

    tags:
      - {name: speed, tag: "Program:MainProgram.Speed", unit: m/min}
      - {name: count, tag: PartCount}
      - {name: zone2, tag: "Oven.Zones[2].Temp", type: real}

`tag` is the controller's symbolic name as Studio 5000 shows it: controller tags by name,
program tags as `Program:NAME.Tag`, array elements `Tag[3]`, UDT members by dotted path. The
type is read from the controller unless `type` gives it (then a value of another type is bad).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge_agent.config.issues import ERROR_TYPE, raise_issues
from edge_agent.config.polled_profile import PolledProfileHead, PolledTag

__all__ = ["EnipProfile", "EnipTag", "LogixType"]

LogixType = Literal[
    "bool", "sint", "int", "dint", "lint", "usint", "uint", "udint", "real", "lreal", "string"
]
# Program:Name. prefix, then dotted members, each an identifier with optional [i] or [i,j,k].
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(\[\d+(,\d+){0,2}\])?"
_TAG = re.compile(rf"^(Program:[A-Za-z_][A-Za-z0-9_]*\.)?{_SEGMENT}(\.{_SEGMENT})*(\.\d+)?$")


class EnipTag(PolledTag):
    """One value of the controller: its symbolic name and how to scale it."""

    tag: str = Field(min_length=1, max_length=255)
    type: LogixType | None = None

    @field_validator("tag")
    @classmethod
    def _symbolic(cls, value: str) -> str:
        if not _TAG.match(value):
            raise PydanticCustomError(
                ERROR_TYPE,
                "{message}",
                {
                    "message": f"{value!r} is not a Logix tag name",
                    "hint": "write it as Studio 5000 shows it: Speed, Program:MainProgram.Speed, "
                    "Data[3], Motor.Status.Running (no spaces; a bit of an integer as Word.5)",
                },
            )
        return value

    @model_validator(mode="after")
    def _bounds(self) -> EnipTag:
        raise_issues("EnipTag", self.common_issues(self.type))
        return self


class EnipProfile(PolledProfileHead):
    """A machine type spoken to over EtherNet/IP (CIP, Logix controllers): its tags by name."""

    protocol: Literal["enip"]
    tags: tuple[EnipTag, ...]
