"""What every driver offers the runtime: one small Protocol and the sample it emits.

A driver maps its library's failures to `edge_agent.errors` at its boundary, so the runtime
handles Modbus and OPC-UA devices the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from edge_agent.drivers.health import DeviceHealth

__all__ = [
    "AcknowledgingDriver",
    "CallingDriver",
    "Driver",
    "Quality",
    "Sample",
    "SubscribingDriver",
    "Value",
    "WritingDriver",
]

Quality = Literal["good", "uncertain", "bad"]
Value = float | int | bool | str | None


class Sample(NamedTuple):
    """One reading of one tag: source time in epoch milliseconds UTC, value and quality.

    A NamedTuple, not a frozen dataclass: every reading the agent takes is one, and a tuple is
    made in less than half the time (issue "overload": the per-reading objects were 9 % of the
    agent's CPU at its ceiling)."""

    tag: str
    ts: int
    value: Value
    quality: Quality


@runtime_checkable
class Driver(Protocol):
    """A connection to one device; used as `async with driver:` or via connect/close."""

    async def connect(self) -> None:
        """Open the connection; raise `DeviceUnavailable` when the device cannot be reached."""

    async def read(self) -> list[Sample]:
        """Read every point once; refused points come back `bad`, a silent device raises."""
        ...

    async def close(self) -> None:
        """Release the connection; safe to call twice."""

    @property
    def offline_after_s(self) -> float:
        """How long polls must fail before the device counts as offline (`offline_after`)."""
        ...

    def report_to(self, health: DeviceHealth) -> None:
        """Report every poll and connection outcome to `health` (the runtime's) from now on."""


@runtime_checkable
class SubscribingDriver(Driver, Protocol):
    """A driver whose protocol pushes changes (OPC-UA subscriptions, Modbus poll loops)."""

    def subscribe(self) -> AsyncIterator[Sample]:
        """Samples as they arrive, across reconnects, until `close()`."""
        ...


@runtime_checkable
class WritingDriver(Driver, Protocol):
    """A driver that writes tags (commands, `edge-agent write`; docs/commands.md)."""

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now."""
        ...

    async def write(self, tag: str, value: Value) -> tuple[Value, Value]:
        """Write a tag the profile marks writable: (value before, value read back after);
        `WriteRefused` before anything is sent when it may not be written."""
        ...


@runtime_checkable
class CallingDriver(Driver, Protocol):
    """A driver that calls methods its profile declares (OPC-UA; docs/commands.md)."""

    async def call(self, method: str, args: Sequence[Value]) -> list[Value]:
        """The method's outputs; `WriteRefused` for an undeclared method or unfit arguments."""
        ...


@runtime_checkable
class AcknowledgingDriver(Driver, Protocol):
    """A driver that acknowledges the alarm conditions it published as events (OPC-UA Alarms &
    Conditions; docs/events.md)."""

    async def acknowledge(self, event: str, comment: str) -> None:
        """Acknowledge the condition occurrence of machine event `event` with `comment`;
        `WriteRefused` when no acknowledgeable condition has that event id, `WriteFailed`
        when the server refuses, `DeviceUnavailable` while disconnected."""
