"""A buffered reading and the compact codec used for chunk bodies on disk (pure)."""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = ["Reading", "decode_readings", "encode_readings"]

Value = float | int | bool | str


class Reading(NamedTuple):
    """One reading as the buffer keeps it: `ts` is epoch milliseconds UTC."""

    tag: str
    ts: int
    v: Value
    q: str = "good"


# Arrays of arrays are ~40 % smaller than wire objects and decode twice as fast; the wire
# shape is produced only when a batch is published (see `wire.encode_telemetry`).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_readings(readings: list[Reading]) -> bytes:
    """Serialise readings for one chunk row."""
    return _ENCODER.encode(readings).encode()


def decode_readings(body: bytes) -> list[Reading]:
    """Inverse of `encode_readings`."""
    return [Reading(*item) for item in json.loads(body)]
