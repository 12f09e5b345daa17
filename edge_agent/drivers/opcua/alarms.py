"""OPC-UA events and Alarms & Conditions → machine events (wire `…/events`); pure, no I/O.

The session subscribes to event notifiers with `event_filter()` and hands each notification's
field values (in select order) to `ConditionTracker.see()`. A condition's transitions (active,
acknowledged, cleared) become events with one id per occurrence: the tracker remembers, per
condition, the occurrence in progress, and that memory is committed with the events it made
(the buffer's `event_state`), so after a restart — even kill -9 — the states ConditionRefresh
re-sends carry the ids and timestamps already sent, and the hub stores them once.

A condition that was retained before a reconnect and is missing from the ConditionRefresh that
follows ended while the agent could not see it (cleared and acknowledged on the panel): the
tracker reports it cleared, so the hub's view never keeps an alarm the machine no longer has.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

import wire
from edge_agent.drivers.opcua.values import WireValue, epoch_ms, wire_value

__all__ = [
    "CONDITION_KEY_PREFIX",
    "ConditionTracker",
    "EventSink",
    "Occurrence",
    "Seen",
    "event_filter",
    "select_names",
]

# event_state keys of conditions; a tag name cannot hold ':', so none collides with a Modbus tag.
CONDITION_KEY_PREFIX = "opcua:"

_BASE = ua.ObjectIds.BaseEventType
_CONDITION = ua.ObjectIds.ConditionType
_ACKABLE = ua.ObjectIds.AcknowledgeableConditionType
_ALARM = ua.ObjectIds.AlarmConditionType

# (field name, event type that defines it, browse path); ConditionId is the condition's NodeId.
_STANDARD: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("EventId", _BASE, ("EventId",)),
    ("EventType", _BASE, ("EventType",)),
    ("SourceNode", _BASE, ("SourceNode",)),
    ("SourceName", _BASE, ("SourceName",)),
    ("Time", _BASE, ("Time",)),
    ("Severity", _BASE, ("Severity",)),
    ("Message", _BASE, ("Message",)),
    ("ConditionName", _CONDITION, ("ConditionName",)),
    ("BranchId", _CONDITION, ("BranchId",)),
    ("Retain", _CONDITION, ("Retain",)),
    ("AckedState/Id", _ACKABLE, ("AckedState", "Id")),
    ("ConfirmedState/Id", _ACKABLE, ("ConfirmedState", "Id")),
    ("ActiveState/Id", _ALARM, ("ActiveState", "Id")),
    ("ActiveState/TransitionTime", _ALARM, ("ActiveState", "TransitionTime")),
    ("ConditionId", _CONDITION, ()),
)

_REFRESH_START = ua.NodeId(ua.Int32(ua.ObjectIds.RefreshStartEventType))
_REFRESH_END = ua.NodeId(ua.Int32(ua.ObjectIds.RefreshEndEventType))
_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_FIELD = re.compile(r"[^A-Za-z0-9_.-]+")
_GONE = (
    "no longer reported by the server after reconnecting: it ended while the agent could not see it"
)

EventSink = Callable[[list[wire.MachineEvent], dict[str, wire.Value]], None]


def _operand(type_id: int, path: Sequence[str]) -> ua.SimpleAttributeOperand:
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = ua.NodeId(ua.Int32(type_id))
    op.BrowsePath = [ua.QualifiedName(p, 0) for p in path]
    op.AttributeId = ua.AttributeIds.NodeId if not path else ua.AttributeIds.Value
    return op


def _extra_operand(path: str) -> ua.SimpleAttributeOperand:
    # "2:BatchId/2:Lot" or "Quality": names with an optional namespace index, below the event.
    names = []
    for part in path.strip("/").split("/"):
        ns, sep, name = part.partition(":")
        names.append(ua.QualifiedName(name, int(ns)) if sep else ua.QualifiedName(part, 0))
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = ua.NodeId(ua.Int32(_BASE))
    op.BrowsePath = names
    op.AttributeId = ua.AttributeIds.Value
    return op


def event_filter(extra: Sequence[str] = ()) -> ua.EventFilter:
    """The select clause: the standard fields, then `extra` (browse paths below the event)."""
    flt = ua.EventFilter()
    flt.SelectClauses = [_operand(t, p) for _n, t, p in _STANDARD]
    flt.SelectClauses += [_extra_operand(p) for p in extra]
    return flt


def select_names(extra: Sequence[str] = ()) -> list[str]:
    """The field name each selected value is reported under (the extra ones' last name)."""
    return [n for n, _t, _p in _STANDARD] + [field_name(p) for p in extra]


def field_name(path: str) -> str:
    """`2:BatchId/2:Lot` → `Lot`: the name an extra field gets in the event's `fields`."""
    last = path.strip("/").rsplit("/", 1)[-1].rpartition(":")[2]
    return _NOT_FIELD.sub("_", last)[:128] or "field"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """The occurrence of one condition in progress, as kept between events (and restarts)."""

    id: str
    active: bool
    source: str
    type: str
    severity: int
    # When it became active, as the server says (ActiveState/TransitionTime; 0: not said): an
    # alarm cleared and raised again while the agent was away is a new occurrence.
    since: int = 0
    event_id: bytes = b""  # the newest notification's EventId: what Acknowledge must name

    def to_state(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "active": self.active,
                "source": self.source,
                "type": self.type,
                "severity": self.severity,
                "since": self.since,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_state(cls, text: str) -> Occurrence | None:
        try:
            raw = json.loads(text)
            return cls(
                str(raw["id"]),
                bool(raw["active"]),
                str(raw["source"]),
                str(raw["type"]),
                int(raw["severity"]),
                int(raw.get("since", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return None  # not ours (or from an older agent): start watching afresh


@dataclass(slots=True)
class Seen:
    """What one notification made: events, and the condition memory to commit with them."""

    events: list[wire.MachineEvent] = field(default_factory=list)
    changed: dict[str, wire.Value] = field(default_factory=dict)


class ConditionTracker:
    """One device's conditions: occurrence ids across transitions, refreshes and restarts."""

    def __init__(
        self, names: Sequence[str], state: Mapping[str, wire.Value], clock_ms: Callable[[], int]
    ) -> None:
        self.names = list(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._clock_ms = clock_ms
        self.occurrences: dict[str, Occurrence] = {}
        for key, value in state.items():
            if key.startswith(CONDITION_KEY_PREFIX) and isinstance(value, str) and value:
                occurrence = Occurrence.from_state(value)
                if occurrence is not None:
                    self.occurrences[key.removeprefix(CONDITION_KEY_PREFIX)] = occurrence
        self._refreshing: set[str] | None = None

    # -- the session's side ------------------------------------------------------------------

    def see(self, values: Sequence[Any]) -> Seen:
        """One event notification's field values, in `select_names()` order."""
        seen = Seen()
        get = _getter(self._index, values)
        event_type = get("EventType")
        if event_type == _REFRESH_START:
            self._refreshing = set()
            return seen
        if event_type == _REFRESH_END:
            self._end_refresh(seen)
            return seen
        if _is_audit(event_type):
            # The server's record of who did what (an Acknowledge, a write): for security
            # auditing, not something that happened at the machine.
            return seen
        condition = get("ConditionId")
        if not isinstance(condition, ua.NodeId) or condition.is_null():
            seen.events.append(self._plain_event(get))
            return seen
        branch = get("BranchId")
        if isinstance(branch, ua.NodeId) and not branch.is_null():
            return seen  # a branch keeps an earlier state for acknowledgement: not the condition's
        self._condition_event(condition.to_string(), get, seen)
        return seen

    def refresh_failed(self) -> None:
        """The server cannot refresh: nothing can be concluded from what it does not re-send."""
        self._refreshing = None

    def acknowledgeable(self, event: str) -> tuple[str, bytes] | None:
        """(condition node id, newest EventId) of the occurrence with id `event`, if known."""
        for condition, occurrence in self.occurrences.items():
            if occurrence.id == event and occurrence.event_id:
                return condition, occurrence.event_id
        return None

    # -- internals ---------------------------------------------------------------------------

    def _condition_event(self, condition: str, get: Callable[[str], Any], seen: Seen) -> None:
        ts = _ts(get("Time"), self._clock_ms)
        active_raw, acked = get("ActiveState/Id"), get("AckedState/Id")
        confirmed = get("ConfirmedState/Id")
        retain = bool(get("Retain"))
        # A condition that is no alarm (no ActiveState) is active while the server retains it.
        active = bool(active_raw) if isinstance(active_raw, bool) else retain
        since = _ts(get("ActiveState/TransitionTime"), lambda: 0) if active else 0
        before = self.occurrences.get(condition)
        if self._refreshing is not None:
            self._refreshing.add(condition)
        if before is None or (active and not before.active):
            occurrence_id = _occurrence_id(condition, ts)  # a new occurrence starts
        elif active and since and before.since and since != before.since:
            # Raised again since the occurrence we know: that one ended unseen.
            seen.events.append(self._gone(condition, before))
            occurrence_id = _occurrence_id(condition, ts)
        else:
            occurrence_id = before.id
        source = _label(get("SourceName")) or _label(_node_text(get("SourceNode"))) or "server"
        type_name = _type_name(get("EventType"))
        severity = _severity(get("Severity"))
        event_id = get("EventId")
        key = CONDITION_KEY_PREFIX + condition
        if retain or active:
            now = Occurrence(
                occurrence_id,
                active,
                source,
                type_name,
                severity,
                since or (before.since if before is not None and before.id == occurrence_id else 0),
                event_id if isinstance(event_id, bytes) else b"",
            )
            self.occurrences[condition] = now
            if before is None or before.to_state() != now.to_state():
                seen.changed[key] = now.to_state()
        else:
            # Inactive and no longer retained (acknowledged): the occurrence is over.
            self.occurrences.pop(condition, None)
            if before is not None:
                seen.changed[key] = ""
        fields: dict[str, wire.Value] = {"condition": condition, "active": active}
        for name, value in (("acked", acked), ("confirmed", confirmed)):
            if isinstance(value, bool):
                fields[name] = value
        fields["retain"] = retain
        if isinstance(event_id, bytes):
            fields["event_id"] = event_id.hex()[:1024]
        fields.update(self._extra_fields(get))
        seen.events.append(
            wire.MachineEvent(
                id=occurrence_id,
                ts=ts,
                source=source,
                type=type_name,
                severity=severity,
                message=_text(get("Message")),
                state=_state(active, acked, confirmed),
                fields=fields,
            )
        )

    def _plain_event(self, get: Callable[[str], Any]) -> wire.MachineEvent:
        ts = _ts(get("Time"), self._clock_ms)
        source = _label(get("SourceName")) or _label(_node_text(get("SourceNode"))) or "server"
        event_id = get("EventId")
        if isinstance(event_id, bytes) and event_id and len(event_id) <= 64:
            occurrence_id = event_id.hex()
        else:
            occurrence_id = _occurrence_id(source, ts)
        return wire.MachineEvent(
            id=occurrence_id,
            ts=ts,
            source=source,
            type=_type_name(get("EventType")),
            severity=_severity(get("Severity")),
            message=_text(get("Message")),
            fields=self._extra_fields(get),
        )

    def _extra_fields(self, get: Callable[[str], Any]) -> dict[str, wire.Value]:
        out: dict[str, wire.Value] = {}
        for name in self.names[len(_STANDARD) :]:
            value: WireValue = wire_value(get(name))
            if value is not None:
                out[name] = value
        return out

    def _end_refresh(self, seen: Seen) -> None:
        refreshed, self._refreshing = self._refreshing, None
        if refreshed is None:
            return  # an end without a start (or a refresh another client asked for)
        for condition in [c for c in self.occurrences if c not in refreshed]:
            gone = self.occurrences.pop(condition)
            seen.changed[CONDITION_KEY_PREFIX + condition] = ""
            seen.events.append(self._gone(condition, gone))

    def _gone(self, condition: str, gone: Occurrence) -> wire.MachineEvent:
        """An occurrence the server no longer reports, cleared as of now."""
        return wire.MachineEvent(
            id=gone.id,
            ts=self._clock_ms(),
            source=gone.source,
            type=gone.type,
            severity=gone.severity,
            message=_GONE,
            state="cleared",
            fields={"condition": condition, "active": False, "retain": False},
        )


def _getter(index: Mapping[str, int], values: Sequence[Any]) -> Callable[[str], Any]:
    def get(name: str) -> Any:
        i = index.get(name)
        return values[i] if i is not None and i < len(values) else None

    return get


def _state(active: bool, acked: Any, confirmed: Any) -> wire.EventState:
    if not active:
        return "cleared"
    if confirmed is True:
        return "confirmed"
    return "acked" if acked is True else "active"


def _occurrence_id(what: str, ts: int) -> str:
    # Node ids hold '=', ';' and spaces the wire's event id does not allow; the ts makes it unique.
    stem = _NOT_ID.sub("_", what).strip("_")[:100] or "condition"
    return f"{stem}:{ts}"


def _ts(value: Any, clock_ms: Callable[[], int]) -> int:
    return epoch_ms(value) if isinstance(value, dt.datetime) else clock_ms()


def _severity(value: Any) -> int:
    # OPC-UA's scale is 1-1000; a server sending 0 or more than 1000 is brought inside it.
    return min(max(value, 1), 1000) if isinstance(value, int) else 500


def _text(value: Any) -> str:
    text = getattr(value, "Text", value)
    return wire_value(text) if isinstance(text, str) else ""  # type: ignore[return-value]


def _label(value: Any) -> str:
    text = _text(value)
    return text[:256]


def _node_text(value: Any) -> str:
    return value.to_string() if isinstance(value, ua.NodeId) and not value.is_null() else ""


def _is_audit(value: Any) -> bool:
    """A standard audit event type (AuditConditionAcknowledgeEventType, …)."""
    return (
        isinstance(value, ua.NodeId)
        and value.NamespaceIndex == 0
        and isinstance(value.Identifier, int)
        and ua.ObjectIdNames.get(value.Identifier, "").startswith("Audit")
    )


def _type_name(value: Any) -> str:
    """`OffNormalAlarmType` for a standard type; the node id text for a server's own."""
    if not isinstance(value, ua.NodeId) or value.is_null():
        return "event"
    if value.NamespaceIndex == 0 and isinstance(value.Identifier, int):
        name = ua.ObjectIdNames.get(value.Identifier)
        if name:
            return name
    return value.to_string()[:256]
