"""Machine event batches (alarms, conditions): bytes ⇄ `MachineEvents` (pure, no clock).

A batch travels like telemetry — `src`, `seq`, receipted by digest — on
`ms/v1/{site}/{line}/{machine}/events`. An event that breaks a rule of its own (its id, fields,
severity, ts) is refused alone; the rest of its batch is kept (docs/wire.md "Events").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.errors import PayloadError, shorten
from wire.limits import MAX_EVENTS, MAX_FUTURE_MS, MAX_PAST_MS, VERSION
from wire.models import MachineEvent, MachineEvents, MachineEventsBody, Segment, Seq, Version
from wire.topics import MachineTopic, parse_topic
from wire.validation import payload_error, validate_payload

__all__ = ["RefusedEvent", "encode_events", "parse_events", "parse_events_partial"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    """An event that breaks a rule of its own, refused alone out of an otherwise good batch."""

    index: int  # its position in the batch as sent
    event: object  # as it arrived (parsed JSON)
    error: PayloadError  # why; its field names the event (`events[3].severity`)


class _Envelope(BaseModel):
    """An events payload whose events are not judged yet (the partial path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Version
    src: Segment
    seq: Seq
    events: Annotated[tuple[Any, ...], Field(min_length=1)]


class _OneEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    events: tuple[MachineEvent]


def parse_events(topic: str, payload: bytes, now_ms: int) -> MachineEvents:
    """Validate one events message; every event must pass. Raises PayloadError only."""
    events, _ = _parse(topic, payload, now_ms, partial=False)
    return events


def parse_events_partial(
    topic: str, payload: bytes, now_ms: int
) -> tuple[MachineEvents, tuple[RefusedEvent, ...]]:
    """Like `parse_events`, but an event that breaks a rule of its own is refused alone (as the
    hub stores them). Raises PayloadError when the message as a whole is bad or no event is left."""
    return _parse(topic, payload, now_ms, partial=True)


def _parse(
    topic: str, payload: bytes, now_ms: int, *, partial: bool
) -> tuple[MachineEvents, tuple[RefusedEvent, ...]]:
    where = parse_topic(topic)
    if not isinstance(where, MachineTopic) or where.kind != "events":
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not an events topic", "topic")
    refused: list[RefusedEvent] = []
    try:
        body = validate_payload(MachineEventsBody, payload)
        src, seq = body.src, body.seq
        numbered = list(enumerate(body.events))
    except PayloadError as exc:
        if exc.field is None or not exc.field.startswith("events"):
            raise
        src, seq, numbered, refused = _split(payload, exc)
        if refused and not partial:
            raise refused[0].error from None
    kept: list[MachineEvent] = []
    for index, event in numbered:
        if now_ms - MAX_PAST_MS <= event.ts <= now_ms + MAX_FUTURE_MS:
            kept.append(event)
            continue
        error = PayloadError(
            "ts_out_of_range",
            f"events[{index}].ts: {event.ts} ({_iso(event.ts)}) is outside the hub's window:"
            " 30 days before to 5 minutes after its clock",
            f"events[{index}].ts",
        )
        if not partial:
            raise error
        refused.append(RefusedEvent(index, event.model_dump(), error))
    if not kept:
        raise min(refused, key=lambda r: r.index).error
    refused.sort(key=lambda r: r.index)
    events = MachineEvents.model_construct(
        site=where.site, line=where.line, machine=where.machine, src=src, seq=seq,
        events=tuple(kept),
    )  # fmt: skip
    return events, tuple(refused)


def _split(
    payload: bytes, first: PayloadError
) -> tuple[str, int, list[tuple[int, MachineEvent]], list[RefusedEvent]]:
    """Judge each event alone (error path only: a batch with a bad event in it)."""
    try:
        envelope = _Envelope.model_validate_json(payload)
    except ValidationError:
        raise first from None  # the envelope is bad too: the message goes as a whole
    if len(envelope.events) > MAX_EVENTS:
        message = f"events: {len(envelope.events)} events, the limit is {MAX_EVENTS}"
        raise PayloadError("bad_field", message, "events")
    kept: list[tuple[int, MachineEvent]] = []
    refused: list[RefusedEvent] = []
    for index, raw in enumerate(envelope.events):
        try:
            # Through JSON again (raw is parsed JSON, so this cannot fail to encode): the
            # strict scalars hold as they do for a whole payload — `true` is never 1.
            one = _OneEvent.model_validate_json(json.dumps({"events": [raw]}))
        except ValidationError as exc:
            error = payload_error(exc)
            placed = PayloadError(
                error.reason,
                error.message.replace("events[0]", f"events[{index}]", 1),
                (error.field or "").replace("events[0]", f"events[{index}]", 1),
            )
            refused.append(RefusedEvent(index, raw, placed))
            continue
        kept.append((index, one.events[0]))
    return envelope.src, envelope.seq, kept, refused


def encode_events(src: str, seq: int, events: Iterable[MachineEvent]) -> bytes:
    """Serialise a batch; raise PayloadError for anything the hub would refuse but the ts window."""
    body = {
        "v": VERSION,
        "src": src,
        "seq": seq,
        "events": [e.model_dump(exclude_none=True, exclude_defaults=True) | {
            "id": e.id, "ts": e.ts, "source": e.source, "type": e.type, "severity": e.severity,
        } for e in events],
    }  # fmt: skip
    try:
        payload = _ENCODER.encode(body).encode()
    except UnicodeEncodeError as exc:
        raise PayloadError("bad_utf8", f"payload: a string is not valid Unicode ({exc})") from exc
    except ValueError as exc:
        raise PayloadError("not_finite", f"payload: {exc}") from exc
    validate_payload(MachineEventsBody, payload)
    return payload


def _iso(ts: int) -> str:
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
