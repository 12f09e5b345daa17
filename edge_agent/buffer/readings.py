"""A buffered reading, and chunk bodies as fragments of wire telemetry payloads (pure).

A chunk body is the inside of the `readings` array of a payload built by `wire.encode_telemetry`
(validated there once, when the chunk is stored). A batch is then one wire envelope around the
comma-joined bodies of its chunks, so draining a backlog costs a join, not a decode and re-encode:
that is what makes 100,000+ readings/s on one core possible.

A machine's events (alarms from its profile's `event:` tags) travel the same way in a lane of
their own, `{machine}/events` (a name no machine can have): their chunk bodies are the inside
of an events batch's `events` array, and their batches go to the machine's events topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

import wire

__all__ = [
    "EVENTS_LANE",
    "Encoder",
    "Reading",
    "assemble",
    "decode_body",
    "encode_body",
    "encode_events_body",
    "events_lane",
    "lane_machine",
    "split_payload",
    "wire_encoder",
]

Value = float | int | bool | str

_ARRAY = b'"readings":['
_EVENTS_ARRAY = b'"events":['
# `{"v":1,"src":"<64>","seq":<19 digits>,"readings":[` is at most 118 bytes.
_HEAD_BYTES = 160
# The lane suffix of a machine's events: "/" is never in a machine name (a topic segment).
EVENTS_LANE = "/events"


class Reading(NamedTuple):
    """One reading as the buffer keeps it: `ts` is epoch milliseconds UTC."""

    tag: str
    ts: int
    v: Value
    q: str = "good"


# Builds the wire payload of a batch: (device, seq, readings) -> bytes; raises ValueError
# (wire.PayloadError) for readings the hub would refuse.
Encoder = Callable[[str, int, list[Reading]], bytes]

# Any valid reading serves to build an envelope; its fragment is cut away again.
_PLACEHOLDER = [Reading("x", 0, 0)]


def wire_encoder(src: str) -> Encoder:
    """An encoder for publisher id `src` using the wire contract."""

    def encode(device: str, seq: int, readings: list[Reading]) -> bytes:
        return wire.encode_telemetry(src, seq, readings)

    return encode


def events_lane(machine: str) -> str:
    """The buffer lane ("device") a machine's events are kept and batched under."""
    return machine + EVENTS_LANE


def lane_machine(device: str) -> tuple[str, bool]:
    """(machine, True) for an events lane, (device, False) for a machine's readings."""
    if device.endswith(EVENTS_LANE):
        return device[: -len(EVENTS_LANE)], True
    return device, False


def split_payload(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a telemetry (or events) payload into (head, array fragment, tail)."""
    # The array follows v, src and seq, so it starts within the head: look only there (this
    # runs on every appended chunk; a string value could also spell the other array's key).
    events = payload.find(_EVENTS_ARRAY, 0, _HEAD_BYTES)
    array = _ARRAY if events == -1 else _EVENTS_ARRAY
    start = (events if events != -1 else payload.index(_ARRAY)) + len(array)
    end = payload.rindex(b"]")  # every field after the array is a scalar
    return payload[:start], payload[start:end], payload[end:]


def encode_events_body(events: list[wire.MachineEvent]) -> bytes:
    """The validated wire fragment of a machine's events (raises ValueError if one is refused)."""
    return split_payload(wire.encode_events("buffer", 0, events))[1]


def encode_body(encode: Encoder, device: str, readings: list[Reading]) -> bytes:
    """The validated wire fragment of `readings` (raises ValueError if any is refused)."""
    return split_payload(encode(device, 0, readings))[1]


def assemble(
    encode: Encoder, device: str, seq: int, bodies: list[bytes], trace: str | None = None
) -> bytes:
    """The payload of batch `seq` made of chunk `bodies`, in order (an events batch for an
    events lane: the same envelope, `src` and `seq`, around its `events` array). `trace`: the
    batch's W3C traceparent, in the envelope's optional `trace` field (telemetry only)."""
    head, _, tail = split_payload(encode(device, seq, _PLACEHOLDER))
    if lane_machine(device)[1]:
        head = head.replace(_ARRAY, _EVENTS_ARRAY)
    elif trace is not None:
        # A traceparent is lowercase hex and dashes: nothing to escape.
        head = head.replace(_ARRAY, b'"trace":"' + trace.encode() + b'",' + _ARRAY)
    return head + b",".join(bodies) + tail


def decode_body(body: bytes) -> list[Reading]:
    """Readings of a chunk body (for downsampling and export, not the publish path)."""
    return [
        Reading(d["tag"], d["ts"], d["v"], d.get("q", "good"))
        for d in json.loads(b"[" + body + b"]")
    ]
