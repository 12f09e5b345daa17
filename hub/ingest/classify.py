"""Turn one MQTT message into what storage commits: telemetry, status, meta or a dead letter (pure).

All topic and payload parsing is `wire`'s; this module only routes and maps. It never raises on
input: anything `wire` refuses becomes a `DeadLetter` carrying wire's stable reason code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import wire
from hub.ingest.message import Incoming
from hub.storage import (
    AgentStatusUpdate,
    CommandResultUpdate,
    CompactReading,
    DeadLetter,
    EventBatch,
    EventRow,
    MachineMetaUpdate,
    MachineStatusUpdate,
    SparkplugBirth,
    TelemetryBatch,
)

__all__ = ["Classified", "Part", "Several", "classify", "guess_seq", "guess_src", "parts"]

# One thing a message becomes (the pipeline batches these into storage transactions).
Part = (
    TelemetryBatch
    | EventBatch
    | DeadLetter
    | MachineStatusUpdate
    | AgentStatusUpdate
    | MachineMetaUpdate
    | CommandResultUpdate
    | SparkplugBirth
)


@dataclass(frozen=True, slots=True)
class Several:
    """A message that becomes more than one thing, committed together (a Sparkplug birth:
    its readings, the machine's status and the birth's aliases)."""

    parts: tuple[Part, ...]


# What one message becomes.
Classified = Part | Several


def parts(result: Classified | None) -> tuple[Part, ...]:
    """The things a classified message became, in order (none for an ignored one)."""
    if result is None:
        return ()
    if isinstance(result, Several):
        return result.parts
    return (result,)


# Only to attribute a refused payload to its publisher in the dead-letter table; never used to
# accept data. Bounded: looks at the first 4 KiB only.
_SRC = re.compile(rb'"src"\s*:\s*"(' + wire.SEGMENT_PATTERN.encode() + rb')"')
_SEQ = re.compile(rb'"seq"\s*:\s*(\d{1,18})\s*[,}]')
_LISTED = 5  # refused readings named in a partial dead letter's message (all are in its payload)


def guess_src(payload: bytes) -> str | None:
    """Best-effort publisher id of a payload that failed validation."""
    found = _SRC.search(payload[:4096])
    return found.group(1).decode("ascii") if found else None


def guess_seq(payload: bytes) -> int | None:
    """Best-effort batch seq of a payload that failed validation (to receipt its dead letter)."""
    found = _SEQ.search(payload[:4096])
    return int(found.group(1)) if found else None


# Topics of batches a publisher numbers and the hub receipts (a refused one too).
_BATCHES = ("/telemetry", "/events")


def _dead(msg: Incoming, exc: wire.PayloadError) -> DeadLetter:
    src = guess_src(msg.payload)
    batch = msg.topic.endswith(_BATCHES)
    return DeadLetter(
        topic=msg.topic,
        payload=msg.payload,
        reason=exc.reason,
        message=str(exc)[:2000],
        received_at=msg.received_at,
        src=src,
        seq=guess_seq(msg.payload) if batch and src is not None else None,
        digest=wire.batch_digest(msg.payload) if batch and src is not None else "",
    )


def _set_aside(  # noqa: PLR0917 -- one batch's identity and what of it was refused
    msg: Incoming,
    src: str,
    seq: int,
    digest: str,
    what: str,
    refused: list[tuple[object, wire.PayloadError]],
    kept: int,
) -> DeadLetter:
    """Only the `what` ("readings", "events") the hub cannot store, as a batch of their own,
    with every reason; the rest of the batch is stored."""
    total = kept + len(refused)
    reasons = "; ".join(str(error) for _, error in refused[:_LISTED])
    more = f"; and {len(refused) - _LISTED} more" if len(refused) > _LISTED else ""
    body = {"v": 1, "src": src, "seq": seq, what: [item for item, _ in refused]}
    return DeadLetter(
        topic=msg.topic,
        payload=json.dumps(body, separators=(",", ":")).encode(),
        reason=refused[0][1].reason,
        message=f"{len(refused)} of {total} {what} refused, the rest stored: {reasons}{more}"[
            :2000
        ],
        received_at=msg.received_at,
        src=src,
        seq=seq,
        digest=digest,
    )


def _events(msg: Incoming) -> EventBatch:
    e, refused = wire.parse_events_partial(msg.topic, msg.payload, msg.received_at)
    digest = wire.batch_digest(msg.payload)
    rows = [
        EventRow(x.id, x.ts, x.source, x.type, x.severity, x.message, x.state,
                 json.dumps(dict(x.fields), separators=(",", ":"), ensure_ascii=False))
        for x in e.events
    ]  # fmt: skip
    aside = None
    if refused:
        errors = [(r.event, r.error) for r in refused]
        aside = _set_aside(msg, e.src, e.seq, digest, "events", errors, len(rows))
    return EventBatch(e.site, e.line, e.machine, e.src, e.seq, rows, digest, aside, msg.received_at)


def classify(msg: Incoming) -> Classified | None:
    """Validate `msg` against the wire contract (its receive time is `now`); None = ignore."""
    try:
        if msg.topic.endswith("/telemetry"):
            return _telemetry(msg)
        if msg.topic.endswith("/events"):
            return _events(msg)
        if not msg.payload:
            # A zero-length retained PUBLISH is how MQTT clears a retained status: not an error.
            return None
        if msg.topic.endswith("/meta"):
            return _meta(msg)
        return _agent(msg) if msg.topic.startswith("ms/v1/agents/") else _status(msg)
    except wire.PayloadError as exc:
        return _dead(msg, exc)


def _status(msg: Incoming) -> MachineStatusUpdate:
    s = wire.parse_status(msg.topic, msg.payload)
    return MachineStatusUpdate(
        site=s.site,
        line=s.line,
        machine=s.machine,
        state=s.state,
        ts=s.ts,
        detail=s.detail,
        payload=msg.payload.decode("utf-8"),
        received_at=msg.received_at,
    )


def _telemetry(msg: Incoming) -> TelemetryBatch:
    t, refused = wire.parse_telemetry_partial(msg.topic, msg.payload, msg.received_at)
    # Compact tuples: the window may hold 256 batches of up to 10,000 readings each.
    readings = [CompactReading(r.tag, r.ts, r.v, r.q) for r in t.readings]
    digest = wire.batch_digest(msg.payload)
    aside = None
    if refused:
        errors = [(r.reading, r.error) for r in refused]
        aside = _set_aside(msg, t.src, t.seq, digest, "readings", errors, len(readings))
    return TelemetryBatch(
        t.site, t.line, t.machine, t.src, t.seq, readings, digest, aside, trace=msg.trace or t.trace
    )


def _meta(msg: Incoming) -> MachineMetaUpdate:
    m = wire.parse_meta(msg.topic, msg.payload)
    return MachineMetaUpdate(
        site=m.site,
        line=m.line,
        machine=m.machine,
        ts=m.ts,
        tags=[(tag, t.unit, t.description) for tag, t in m.tags.items()],
        limits=[
            (tag, t.limits.low, t.limits.high) for tag, t in m.tags.items() if t.limits is not None
        ],
        writable=[
            (tag, t.writable.min, t.writable.max)
            for tag, t in m.tags.items()
            if t.writable is not None
        ],
        payload=msg.payload.decode("utf-8"),
        received_at=msg.received_at,
        quiet_ms=wire.quiet_ms(m.tags),
        scheduled_per_minute=wire.scheduled_per_minute(m.tags),
    )


def _agent(msg: Incoming) -> CommandResultUpdate | AgentStatusUpdate:
    """An agent's answer to a command, or its status (PayloadError when it breaks v1)."""
    if msg.topic.endswith("/cmd/res"):
        agent_id, r = wire.parse_command_result(msg.topic, msg.payload)
        return CommandResultUpdate(
            agent_id=agent_id,
            id=r.id,
            status=r.status,
            detail=r.detail,
            ts=r.ts,
            previous=None if r.previous is None else json.dumps(r.previous),
            # A call's outputs are kept where a write keeps its read-back value.
            read_back=json.dumps(r.outputs if r.outputs is not None else r.read_back)
            if r.outputs is not None or r.read_back is not None
            else None,
            received_at=msg.received_at,
        )
    a = wire.parse_agent_status(msg.topic, msg.payload)
    return AgentStatusUpdate(
        agent_id=a.agent_id,
        state=a.state,
        ts=a.ts,
        version=a.version,
        buffer_depth=a.buffer_depth,
        drops=a.dropped,
        payload=msg.payload.decode("utf-8"),
        received_at=msg.received_at,
        site=a.site,
        line=a.line,
        produced=tuple(
            (machine, minute, count)
            for machine, device in a.devices.items()
            for minute, count in device.produced
        ),
        devices=tuple(sorted(a.devices.keys() | a.poll_errors.keys())),
        drop_spans=tuple(
            (machine, first, last, n)
            for machine, device in a.devices.items()
            for first, last, n in device.drops
        ),
        live_rate=max(0.0, (a.publish_rate or 0.0) - (a.drain_rate or 0.0)),
    )
