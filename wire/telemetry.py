"""Telemetry batches: bytes ⇄ `Telemetry`, with every hub limit enforced (pure, no clock)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from pydantic_core import from_json

from wire.errors import PayloadError, shorten
from wire.limits import MAX_FUTURE_MS, MAX_PAST_MS, MAX_READINGS, VERSION
from wire.models import Telemetry, TelemetryBody
from wire.topics import MachineTopic, parse_topic
from wire.validation import validate_payload

__all__ = ["ReadingLike", "encode_telemetry", "parse_telemetry"]

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


def parse_telemetry(topic: str, payload: bytes, now_ms: int) -> Telemetry:
    """Validate one telemetry message as received; raise PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, MachineTopic) or where.kind != "telemetry":
        raise PayloadError(
            "bad_topic", f"topic: {shorten(topic)} is not a telemetry topic", "topic"
        )
    try:
        body = validate_payload(TelemetryBody, payload)
    except PayloadError as exc:
        if exc.field is not None and exc.field.startswith("readings["):
            _refuse_too_many(payload)
        raise
    oldest, newest = now_ms - MAX_PAST_MS, now_ms + MAX_FUTURE_MS
    for index, reading in enumerate(body.readings):
        if not oldest <= reading.ts <= newest:
            raise PayloadError(
                "ts_out_of_range",
                f"readings[{index}].ts: {reading.ts} ({_iso(reading.ts)}) is"
                f" {_offset(reading.ts - now_ms)} the hub's clock; accepted: 30 days before to"
                " 5 minutes after",
                f"readings[{index}].ts",
            )
    # Everything was validated above; constructing again would double the cost of a batch.
    return Telemetry.model_construct(
        site=where.site,
        line=where.line,
        machine=where.machine,
        src=body.src,
        seq=body.seq,
        readings=body.readings,
    )


def encode_telemetry(src: str, seq: int, readings: Iterable[ReadingLike]) -> bytes:
    """Serialise a batch; raise PayloadError for anything but the ts window the hub would refuse."""
    body = {
        "v": VERSION,
        "src": src,
        "seq": seq,
        "readings": [{"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q} for r in readings],
    }
    try:
        payload = _ENCODER.encode(body).encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in a tag or string value
        raise PayloadError("bad_utf8", f"payload: a string is not valid Unicode ({exc})") from exc
    except ValueError as exc:  # allow_nan=False
        raise PayloadError("not_finite", f"payload: {exc}") from exc
    except TypeError as exc:
        raise PayloadError("bad_field", f"payload: {exc}") from exc
    # The exact rules the hub applies, so a batch the agent publishes is a batch the hub accepts.
    validate_payload(TelemetryBody, payload)
    return payload


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
