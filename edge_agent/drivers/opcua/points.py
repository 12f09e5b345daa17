"""What the OPC-UA driver reads: plain frozen values, independent of the pydantic config models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Deadband", "OpcuaEndpoint", "OpcuaEvents", "OpcuaMethod", "OpcuaPoint"]

Mode = Literal["subscribe", "poll"]
DeadbandKind = Literal["absolute", "percent"]


@dataclass(frozen=True, slots=True)
class Deadband:
    """A data-change filter: report only changes larger than `value` (OPC 10000-4 §7.22.2)."""

    kind: DeadbandKind
    value: float


@dataclass(frozen=True, slots=True)
class OpcuaPoint:
    """One tag of a device: where it lives in the address space and how it is acquired."""

    tag: str
    node: str | None = None
    browse_path: str | None = None
    mode: Mode = "subscribe"
    sampling_ms: int = 1000
    deadband: Deadband | None = None
    # 1 = no queuing on the server: the agent wants the newest value, not a backlog.
    queue_size: int = 1
    unit: str | None = None
    # A subscribed value that has not changed is re-sent this often with the current time.
    max_interval_ms: int = 60_000
    # Commands may write it, within [min, max] (docs/commands.md).
    writable: bool = False
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError(f"tag {self.tag}: give exactly one of node or browse_path")
        if self.sampling_ms < 0:
            raise ValueError(f"tag {self.tag}: sampling_ms must be >= 0")

    @property
    def address(self) -> str:
        """The node id or browse path, as written in the profile."""
        return self.node if self.node is not None else str(self.browse_path)


@dataclass(frozen=True, slots=True)
class OpcuaEndpoint:
    """How to reach one server: URL, security string and user credentials."""

    url: str
    security: str = "None"
    username: str | None = None
    # Resolved from the environment variable named by `password_env` in the agent config,
    # so secrets never sit in YAML files.
    password: str | None = None


@dataclass(frozen=True, slots=True)
class OpcuaMethod:
    """A method commands may call: `method` on `object` (NodeId strings, from the profile)."""

    name: str
    object: str
    method: str


@dataclass(frozen=True, slots=True)
class OpcuaEvents:
    """Which events a device's session subscribes to (docs/events.md "From OPC-UA")."""

    # NodeIds of the objects whose events are wanted; i=2253 is the Server object, which sees
    # every event the server reports.
    notifiers: tuple[str, ...] = ("i=2253",)
    # Event fields selected beyond the standard ones: browse paths below the event type.
    fields: tuple[str, ...] = ()
    # ConditionRefresh after every (re)connect, so conditions active meanwhile are known.
    refresh: bool = True
