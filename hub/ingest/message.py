"""A message as it left the broker, before any parsing."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Incoming"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT PUBLISH received by the hub, with what it takes to acknowledge it later."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    received_at: int  # epoch ms, read once at the I/O edge
    # Which broker connection delivered it: a packet id is only meaningful on that connection.
    generation: int = 0
    # Which of the hub's broker sessions it came on (its own tree, or the Sparkplug host's):
    # each acknowledges only its own messages.
    channel: str = ""
    # The `traceparent` MQTT v5 user property, if the publisher sent one (docs/tracing.md).
    trace: str | None = None
    received_ns: int = 0  # wall clock in ns at the I/O edge, for the trace's spans
