"""A machine's alarm bits and code registers (`event:` on a profile tag) turned into machine
events (wire `…/events`), from the readings the agent buffers anyway (pure); and the protocol of
a driver that reports events of its own (OPC-UA Alarms & Conditions).

Each watched tag's last value is kept with the events in the buffer (edge_agent/buffer/db.py
`event_state`), so a restart — even kill -9 — compares the first new reading with the last
committed one: an edge is reported once, and one that happened while the agent was down is
reported when it reads the tag again (a Modbus bit keeps no history of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import wire
from edge_agent.buffer import Reading
from edge_agent.buffer.readings import Value
from edge_agent.config import LoadedConfig
from edge_agent.config.tag_event import TagEvent

__all__ = ["EventSink", "EventWatch", "ReportsEvents", "Seen", "tag_events"]

# Where events go, with the memory to commit in the same transaction (the buffer's event_state).
EventSink = Callable[[list[wire.MachineEvent], dict[str, Value]], None]


@runtime_checkable
class ReportsEvents(Protocol):
    """A driver whose machine reports events itself (OPC-UA event notifiers and conditions)."""

    @property
    def wants_events(self) -> bool:
        """True when its profile asks for events."""
        ...

    def report_events_to(self, sink: EventSink, state: Mapping[str, Value]) -> None:
        """Hand every event to `sink` from now on, starting from the committed `state`."""


def tag_events(loaded: LoadedConfig) -> dict[str, dict[str, TagEvent]]:
    """Machine → tag → its `event:`, for every device with such tags."""
    out: dict[str, dict[str, TagEvent]] = {}
    for d in loaded.devices:
        watched = {
            t.name: event
            for t in d.profile.tags
            if (event := getattr(t, "event", None)) is not None
        }
        if watched:
            out[d.device.machine] = watched
    return out


@dataclass(frozen=True, slots=True)
class Seen:
    """What one round of readings made: the events, and the watched tags' new values."""

    events: list[wire.MachineEvent] = field(default_factory=list)
    changed: dict[str, Value] = field(default_factory=dict)


class EventWatch:
    """One machine's watched tags: compares each reading with the tag's last value."""

    def __init__(self, specs: Mapping[str, TagEvent], last: Mapping[str, Value]) -> None:
        self.specs = dict(specs)
        self.last: dict[str, Value] = {t: v for t, v in last.items() if t in self.specs}

    def see(self, readings: Iterable[Reading]) -> Seen:
        """The events `readings` make (in their order) and the values that changed."""
        seen = Seen()
        for r in readings:
            spec = self.specs.get(r.tag)
            if spec is None or r.q == "bad":  # a bad value is no evidence of an edge
                continue
            before = self.last.get(r.tag)
            if before == r.v and type(before) is type(r.v):
                continue
            self.last[r.tag] = seen.changed[r.tag] = r.v
            if before is None:
                continue  # never read before: its value now is where watching starts
            edge = ("rising" if r.v else "falling") if isinstance(r.v, bool) else "change"
            if spec.on in ("change", edge):
                seen.events.append(
                    wire.MachineEvent(
                        id=f"{r.tag}:{r.ts}",
                        ts=r.ts,
                        source=r.tag,
                        type=spec.type,
                        severity=spec.severity,
                        message=spec.text(r.v),
                        fields={"value": r.v, "previous": before},
                    )
                )
        return seen
