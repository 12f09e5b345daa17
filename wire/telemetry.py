"""Telemetry batches: bytes ⇄ `Telemetry`, with every hub limit enforced (pure, no clock)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from wire.errors import PayloadError, shorten
from wire.limits import MAX_FUTURE_MS, MAX_PAST_MS, MAX_PAYLOAD_BYTES, MAX_READINGS, VERSION
from wire.models import Reading, Segment, Seq, Telemetry, TelemetryBody, TraceField, Version
from wire.plain import plainly_valid
from wire.topics import MachineTopic, parse_topic
from wire.validation import payload_error, validate_payload

__all__ = [
    "ReadingLike",
    "RefusedReading",
    "encode_telemetry",
    "parse_telemetry",
    "parse_telemetry_partial",
    "validate_reading",
]

# Compact, UTF-8 as is (escaping non-ASCII only grows the payload), NaN refused at the source.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ReadingLike(Protocol):
    """Anything with a reading's attributes: `wire.Reading`, the agent buffer's NamedTuple."""

    @property
    def tag(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def v(self) -> float | int | bool | str: ...
    @property
    def q(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RefusedReading:
    """A reading that breaks a per-reading rule, refused alone out of an otherwise good batch."""

    index: int  # its position in the batch as sent
    reading: object  # the reading as it arrived (parsed JSON)
    error: PayloadError  # why; its field names the reading (`readings[3].v`)


class _Envelope(BaseModel):
    """A telemetry payload whose readings are not judged yet (the partial path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Version
    src: Segment
    seq: Seq
    trace: TraceField = None
    readings: Annotated[tuple[Any, ...], Field(min_length=1, max_length=MAX_READINGS)]


class _OneReading(BaseModel):
    """One reading in the place it has in a batch, so errors carry the batch's field paths."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    readings: tuple[Reading]


def parse_telemetry(topic: str, payload: bytes, now_ms: int) -> Telemetry:
    """Validate one telemetry message as received; raise PayloadError, never anything else.

    Every reading must pass: the first that does not refuses the whole message.
    """
    telemetry, _ = _parse(topic, payload, now_ms, partial=False)
    return telemetry


def parse_telemetry_partial(
    topic: str, payload: bytes, now_ms: int
) -> tuple[Telemetry, tuple[RefusedReading, ...]]:
    """Like `parse_telemetry`, but a reading that breaks a rule of its own (its value, tag,
    quality or ts) is refused alone and the rest is kept, as the hub stores them.

    Raises PayloadError when the message as a whole is bad (topic, JSON, envelope, count) or
    when no reading is left.
    """
    return _parse(topic, payload, now_ms, partial=True)


def _parse(
    topic: str, payload: bytes, now_ms: int, *, partial: bool
) -> tuple[Telemetry, tuple[RefusedReading, ...]]:
    where = parse_topic(topic)
    if not isinstance(where, MachineTopic) or where.kind != "telemetry":
        raise PayloadError(
            "bad_topic", f"topic: {shorten(topic)} is not a telemetry topic", "topic"
        )
    refused: list[RefusedReading] = []
    whole: tuple[Reading, ...] | None = None  # every reading passed its own rules
    try:
        body = validate_payload(TelemetryBody, payload)
        src, seq, trace, whole = body.src, body.seq, body.trace, body.readings
        numbered = list(enumerate(whole))
    except PayloadError as exc:
        if exc.field is None or not exc.field.startswith("readings["):
            raise
        _refuse_too_many(payload)
        if not partial:
            raise
        src, seq, trace, numbered, refused = _split(payload, exc)
    oldest, newest = now_ms - MAX_PAST_MS, now_ms + MAX_FUTURE_MS
    kept: list[Reading] = []
    for index, reading in numbered:
        if oldest <= reading.ts <= newest:
            kept.append(reading)
            continue
        error = _ts_out_of_range(f"readings[{index}]", reading.ts, now_ms)
        if not partial:
            raise error
        refused.append(RefusedReading(index, reading.model_dump(), error))
    if not kept:
        raise min(refused, key=lambda r: r.index).error
    refused.sort(key=lambda r: r.index)
    # Everything was validated above; constructing again would double the cost of a batch.
    telemetry = Telemetry.model_construct(
        site=where.site,
        line=where.line,
        machine=where.machine,
        src=src,
        seq=seq,
        readings=whole if whole is not None and not refused else tuple(kept),
        trace=trace,
    )
    return telemetry, tuple(refused)


def validate_reading(
    tag: str, ts: int, v: object, q: str, now_ms: int, *, where: str = "reading"
) -> Reading:
    """One reading judged by the rules a telemetry batch's readings obey (tag alphabet, value,
    string size, NUL, the hub's ts window), for readings that arrive in another dialect
    (Sparkplug B); `where` names it in the error."""
    try:
        one = _OneReading.model_validate({"readings": [{"tag": tag, "ts": ts, "v": v, "q": q}]})
    except ValidationError as exc:
        raise _placed(payload_error(exc), where) from None
    reading = one.readings[0]
    if not now_ms - MAX_PAST_MS <= reading.ts <= now_ms + MAX_FUTURE_MS:
        raise _ts_out_of_range(where, reading.ts, now_ms)
    return reading


def _placed(error: PayloadError, where: str) -> PayloadError:
    """An error about `readings[0]` of a one-reading probe, naming the reading's real place."""
    return PayloadError(
        error.reason,
        error.message.replace("readings[0]", where, 1),
        (error.field or "").replace("readings[0]", where, 1),
    )


def _ts_out_of_range(where: str, ts: int, now_ms: int) -> PayloadError:
    return PayloadError(
        "ts_out_of_range",
        f"{where}.ts: {ts} ({_iso(ts)}) is {_offset(ts - now_ms)} the hub's clock; accepted:"
        " 30 days before to 5 minutes after",
        f"{where}.ts",
    )


def _split(
    payload: bytes, first: PayloadError
) -> tuple[str, int, str | None, list[tuple[int, Reading]], list[RefusedReading]]:
    """Judge each reading alone (error path only: a batch with a bad reading in it)."""
    try:
        envelope = _Envelope.model_validate_json(payload)
    except ValidationError:
        raise first from None  # the envelope is bad too: the message goes as a whole
    kept: list[tuple[int, Reading]] = []
    refused: list[RefusedReading] = []
    for index, raw in enumerate(envelope.readings):
        try:
            text = json.dumps(raw)
        except (TypeError, ValueError):  # cannot happen for parsed JSON; never raise here
            text = "null"
        try:
            one = _OneReading.model_validate_json(f'{{"readings":[{text}]}}')
        except ValidationError as exc:
            refused.append(
                RefusedReading(index, raw, _placed(payload_error(exc), f"readings[{index}]"))
            )
            continue
        kept.append((index, one.readings[0]))
    return envelope.src, envelope.seq, envelope.trace, kept, refused


def encode_telemetry(src: str, seq: int, readings: Iterable[ReadingLike]) -> bytes:
    """Serialise a batch; raise PayloadError for anything but the ts window the hub would refuse."""
    readings = readings if isinstance(readings, list | tuple) else list(readings)
    # The exact rules the hub applies, so a batch the agent publishes is a batch the hub accepts:
    # checked plainly (wire/plain.py) and written out directly, the agent's hot path; anything
    # else goes the long way, where the model itself words the error as the hub would.
    if plainly_valid(src, seq, readings):
        payload = _utf8(_plain_body(src, seq, readings))
        if len(payload) <= MAX_PAYLOAD_BYTES:
            return payload
    body = {
        "v": VERSION,
        "src": src,
        "seq": seq,
        "readings": [{"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q} for r in readings],
    }
    try:
        text = _ENCODER.encode(body)
    except ValueError as exc:  # allow_nan=False
        raise PayloadError("not_finite", f"payload: {exc}") from exc
    except TypeError as exc:
        raise PayloadError("bad_field", f"payload: {exc}") from exc
    payload = _utf8(text)
    validate_payload(TelemetryBody, payload)
    return payload


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in a tag or string value
        raise PayloadError("bad_utf8", f"payload: a string is not valid Unicode ({exc})") from exc


def _plain_body(src: str, seq: int, readings: Sequence[ReadingLike]) -> str:
    """The JSON `_ENCODER` writes for a batch `plainly_valid` passed, byte for byte, without a
    dict per reading: src, tags and q are plain ASCII by their patterns (nothing to escape), ts
    an int, and a number is written as json writes it (`float.__repr__`)."""
    dumps = _ENCODER.encode
    parts = []
    for r in readings:
        v = r.v
        kind = type(v)
        # An int or a float goes into the f-string as it is: its str() is what json writes
        # (float.__repr__), and skipping a call per reading is a third of this loop's time.
        if kind is not int and kind is not float:
            v = ("true" if v else "false") if kind is bool else dumps(v)
        parts.append(f'{{"tag":"{r.tag}","ts":{r.ts},"v":{v},"q":"{r.q}"}}')
    return f'{{"v":{VERSION},"src":"{src}","seq":{seq},"readings":[{",".join(parts)}]}}'


def _refuse_too_many(payload: bytes) -> None:
    # pydantic checks a list's length only when its items pass, yet with 10,001 readings the
    # count is the story, not whichever reading broke first. Error path only: parse once more.
    try:
        data = from_json(payload)
    except ValueError:  # cannot happen after a field error, but this path must not raise
        return
    readings = data.get("readings") if isinstance(data, dict) else None
    if isinstance(readings, list) and len(readings) > MAX_READINGS:
        message = f"readings: {len(readings)} readings, the limit is {MAX_READINGS}"
        raise PayloadError("too_many_readings", message, "readings") from None


def _iso(ts: int) -> str:
    # Pure: converts the reading's own timestamp, never reads the clock.
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _offset(delta_ms: int) -> str:
    if delta_ms < 0:
        return f"{-delta_ms / 86_400_000:.1f} days before"
    return f"{delta_ms / 60_000:.1f} minutes after"
