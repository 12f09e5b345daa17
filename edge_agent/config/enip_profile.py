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

__all__ = ["EnipDefaults", "EnipProfile", "EnipTag", "LogixType"]

LogixType = Literal[
    "bool", "sint", "int", "dint", "lint", "usint", "uint", "udint", "real", "lreal", "string"
]
# Program:Name. prefix, then dotted members, each an identifier with optional [i] or [i,j,k].
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(\[\d+(,\d+){0,2}\])?"
_TAG = re.compile(rf"^(Program:[A-Za-z_][A-Za-z0-9_]*\.)?{_SEGMENT}(\.{_SEGMENT})*(\.\d+)?$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnipDefaults(_Model):
    """Values a tag inherits when it does not set them."""

    poll_ms: PollMs = 1000
    max_interval: MaxInterval = DEFAULT_MAX_INTERVAL


class EnipTag(_Model):
    """One value of the controller: its symbolic name and how to scale it."""

    name: Name
    tag: str = Field(min_length=1, max_length=255)
    type: LogixType | None = None
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0
    unit: str = Field("", max_length=32)
    deadband: FiniteFloat | None = Field(None, ge=0)
    poll_ms: PollMs | None = None
    max_interval: MaxInterval | None = None
    limits: wire.Limits | None = None
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

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
        issues: list[Issue] = write_bound_issues(self.writable, self.min, self.max, self.type)
        if self.deadband is not None and self.type in ("bool", "string"):
            issues.append(Issue(("deadband",), f"a {self.type} has no deadband", "remove it"))
        raise_issues("EnipTag", issues)
        return self


class EnipProfile(_Model):
    """A machine type spoken to over EtherNet/IP (CIP, Logix controllers): its tags by name."""

    profile: Name
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    protocol: Literal["enip"]
    source: str = Field(min_length=1)
    defaults: EnipDefaults = EnipDefaults()
    tags: tuple[EnipTag, ...]

    @field_validator("tags", mode="wrap")
    @classmethod
    def _tags(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_tag_list("EnipProfile", value, handler)
