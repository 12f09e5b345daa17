"""Device profile for `protocol: opcua`: the nodes of one machine type and how to sample them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

import wire
from edge_agent.config.issues import Issue, raise_issues, reraise_with
from edge_agent.config.modbus_profile import (
    DEFAULT_MAX_INTERVAL,
    MaxInterval,
    duplicate_issues,
    validate_tag_list,
    write_bound_issues,
)
from edge_agent.config.names import Name

__all__ = [
    "OpcUaDeadband",
    "OpcUaDefaults",
    "OpcUaEvents",
    "OpcUaMethod",
    "OpcUaProfile",
    "OpcUaTag",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpcUaDeadband(_Model):
    """OPC-UA data-change filter (Part 4 §7.22.2): absolute units or percent of the EU range."""

    kind: Literal["absolute", "percent"]
    value: FiniteFloat = Field(ge=0)


class OpcUaDefaults(_Model):
    """Values a tag inherits when it does not set them."""

    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_ms: int = Field(1000, ge=0, le=86_400_000)
    max_interval: MaxInterval = DEFAULT_MAX_INTERVAL


class OpcUaTag(_Model):
    """One variable: addressed by node id or by a browse path resolved at every connect."""

    name: Name
    node: str | None = Field(None, min_length=1)
    browse_path: str | None = Field(None, min_length=1)
    mode: Literal["subscribe", "poll"] | None = None
    sampling_ms: int | None = Field(None, ge=0, le=86_400_000)
    deadband: OpcUaDeadband | None = None
    max_interval: MaxInterval | None = None
    unit: str = Field("", max_length=32)
    # Plausible range in engineering units (after scale/offset): the hub alerts past it.
    limits: wire.Limits | None = None
    # Commands may write this node (docs/commands.md), numbers within `min`/`max`.
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    @model_validator(mode="after")
    def _bounds(self) -> OpcUaTag:
        raise_issues("OpcUaTag", write_bound_issues(self.writable, self.min, self.max))
        return self

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise_issues(
                "OpcUaTag",
                [
                    Issue(
                        ("node",),
                        "give exactly one of node and browse_path",
                        'node: "ns=2;s=Spindle.Speed" is fixed; browse_path: '
                        '"/Objects/2:Machine/2:Speed" survives node id changes in a PLC download',
                    )
                ],
            )
        return self


class OpcUaMethod(_Model):
    """A method commands may call (docs/commands.md): the object it belongs to and its node."""

    name: Name
    object: str = Field(min_length=1)  # NodeId of the object the method is called on
    method: str = Field(min_length=1)  # NodeId of the method
    description: str = Field("", max_length=256)


_NODE_ID = r"^(ns=\d+;)?[isgb]=.+$"
_FIELD_PATH = r"^/?(\d+:)?[^/:]+(/(\d+:)?[^/:]+)*$"


class OpcUaEvents(_Model):
    """Events and Alarms & Conditions the machine reports (docs/events.md "From OPC-UA")."""

    # Objects whose events are wanted: the Server object (i=2253) sees every event the server
    # reports; a PLC may also offer its own notifiers (`edge-agent browse` marks them).
    notifiers: tuple[str, ...] = Field(("i=2253",), min_length=1, max_length=32)
    # Extra event fields beyond the standard ones, as browse paths below the event type
    # ("2:BatchId"); each arrives in the event's `fields` under its last name.
    fields: tuple[str, ...] = Field((), max_length=32)
    # ConditionRefresh after every (re)connect: alarms raised while the agent was away are known.
    refresh: bool = True

    @field_validator("notifiers")
    @classmethod
    def _node_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            if not re.match(_NODE_ID, node):
                raise ValueError(
                    f"{node!r} is not a node id: write it as i=2253 (the Server object) or "
                    "ns=2;s=Press"
                )
        return value

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not re.match(_FIELD_PATH, path):
                raise ValueError(
                    f"{path!r} is not a field path: write names below the event type, each with "
                    "its namespace index, like 2:BatchId or 2:Recipe/2:Name"
                )
        return value


class OpcUaProfile(_Model):
    """A machine type spoken to over OPC-UA: its variables and sampling rules."""

    profile: Name
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    protocol: Literal["opcua"]
    source: str = Field(min_length=1)
    defaults: OpcUaDefaults = OpcUaDefaults()
    tags: tuple[OpcUaTag, ...]
    # Methods commands may call; only these (nothing else on the server can be called).
    methods: tuple[OpcUaMethod, ...] = ()
    # Subscribe to the machine's events and alarm conditions (None: no event subscription).
    events: OpcUaEvents | None = None

    @field_validator("tags", mode="wrap")
    @classmethod
    def _unique_names(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_tag_list("OpcUaProfile", value, handler)

    @field_validator("methods", mode="wrap")
    @classmethod
    def _unique_methods(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_issues(value, "name", "method name", "methods")
        try:
            methods = handler(value)
        except ValidationError as exc:
            reraise_with("OpcUaProfile", exc, problems)
        raise_issues("OpcUaProfile", problems)
        return methods
