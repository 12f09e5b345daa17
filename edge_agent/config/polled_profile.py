"""What the profiles of polled PLC protocols share (S7, EtherNet/IP): the profile's head, its
defaults, and a tag's scaling, sampling, limits and write range. Each protocol adds how a tag
is addressed (edge_agent/config/s7_profile.py, enip_profile.py)."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidatorFunctionWrapHandler,
    field_validator,
)

import wire
from edge_agent.config.issues import Issue
from edge_agent.config.modbus_profile import (
    DEFAULT_MAX_INTERVAL,
    MaxInterval,
    PollMs,
    validate_tag_list,
    write_bound_issues,
)
from edge_agent.config.names import Name

__all__ = ["PolledDefaults", "PolledProfileHead", "PolledTag"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolledDefaults(_Model):
    """Values a tag inherits when it does not set them."""

    poll_ms: PollMs = 1000
    max_interval: MaxInterval = DEFAULT_MAX_INTERVAL


class PolledTag(_Model):
    """A tag's name, scaling, sampling, plausible range and the range commands may write."""

    name: Name
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0
    unit: str = Field("", max_length=32)
    deadband: FiniteFloat | None = Field(None, ge=0)
    poll_ms: PollMs | None = None
    max_interval: MaxInterval | None = None
    # Plausible range in engineering units (after scale/offset): the hub alerts past it.
    limits: wire.Limits | None = None
    # Commands may write this tag (docs/commands.md), numbers within `min`/`max` (engineering
    # units, before scale and offset are undone).
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    def common_issues(self, type_: str | None) -> list[Issue]:
        """What is wrong with the shared keys for a tag of `type_` (None: decided by the PLC)."""
        issues = write_bound_issues(self.writable, self.min, self.max, type_)
        if self.deadband is not None and type_ in ("bool", "string"):
            issues.append(Issue(("deadband",), f"a {type_} has no deadband", "remove it"))
        return issues


class PolledProfileHead(_Model):
    """The head every profile has: its name, the machine it describes, where the map is from."""

    profile: Name
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    source: str = Field(min_length=1)
    defaults: PolledDefaults = PolledDefaults()

    @field_validator("tags", mode="wrap", check_fields=False)
    @classmethod
    def _tags(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_tag_list(cls.__name__, value, handler)
