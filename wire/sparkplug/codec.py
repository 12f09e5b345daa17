"""Sparkplug B payloads ↔ plain values (pure): what the hub reads, what the agent sends.

`decode` never raises anything but `PayloadError` (reason `bad_protobuf`), whatever bytes
arrive. A metric whose value Millstream cannot hold (datasets, templates, arrays, bytes, files,
property sets) is decoded with `.refused` saying why, so the caller stores the rest of the
message and sets only that metric aside.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from wire.errors import PayloadError
from wire.limits import MAX_PAYLOAD_BYTES
from wire.sparkplug.schema import Payload

__all__ = [
    "DATATYPES",
    "QUALITY_PROPERTY",
    "SpbMetric",
    "SpbPayload",
    "datatype_of",
    "decode",
    "encode",
]

# Sparkplug B 3.0 §6.4.16 data type codes, by name (what births declare).
DATATYPES: dict[str, int] = {
    "Int8": 1, "Int16": 2, "Int32": 3, "Int64": 4,
    "UInt8": 5, "UInt16": 6, "UInt32": 7, "UInt64": 8,
    "Float": 9, "Double": 10, "Boolean": 11, "String": 12, "DateTime": 13, "Text": 14,
    "UUID": 15, "DataSet": 16, "Bytes": 17, "File": 18, "Template": 19,
    "PropertySet": 20, "PropertySetList": 21,
}  # fmt: skip
_NAMES = {code: name for name, code in DATATYPES.items()}
_SIGNED_BITS = {1: 8, 2: 16, 3: 32, 4: 64}
_STRINGS = {12, 14, 15}
# A payload whose body is another payload, compressed (Tahu's clients: `{compress: true}`).
COMPRESSED_UUID = "SPBV1.0_COMPRESSED"
# The metric property carrying a value's quality (Ignition's convention, which Tahu follows):
# 192 good, 0 bad, 500 stale; others read by the OPC-UA-like bands below.
QUALITY_PROPERTY = "Quality"


@dataclass(frozen=True, slots=True)
class SpbMetric:
    """One metric as sent: a name and/or an alias, and a value or the reason it has none."""

    name: str | None
    alias: int | None
    ts: int | None
    datatype: int | None
    value: float | int | bool | str | None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    quality: str = "good"  # good | uncertain | bad
    refused: str | None = None  # why the value cannot be kept (None: it can)


@dataclass(frozen=True, slots=True)
class SpbPayload:
    """A decoded Sparkplug B payload."""

    timestamp: int | None
    seq: int | None
    metrics: list[SpbMetric] = field(default_factory=list)
    # Free text for correlation; a Millstream agent puts `ms:{src}:{batch seq}` here, which
    # lets a Millstream host receipt the batch (docs/sparkplug.md "Receipts").
    uuid: str | None = None


def datatype_of(value: float | int | bool | str) -> int:
    """The Sparkplug data type a value is sent as (what the agent declares in its births)."""
    if isinstance(value, bool):
        return DATATYPES["Boolean"]
    if isinstance(value, int):
        return DATATYPES["Int64"]
    if isinstance(value, float):
        return DATATYPES["Double"]
    return DATATYPES["String"]


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def _quality(props: Any) -> str:
    for key, value in zip(props.keys, props.values, strict=False):
        if key != QUALITY_PROPERTY:
            continue
        kind = value.WhichOneof("value")
        code = getattr(value, kind) if kind in ("int_value", "long_value") else None
        if not isinstance(code, int):
            return "good"
        if code == 500:  # stale: the last value, no longer being updated
            return "uncertain"
        code = _signed(code, 32)
        return "good" if code >= 192 else "uncertain" if code >= 64 else "bad"
    return "good"


def _value(m: Any, datatype: int | None) -> tuple[float | int | bool | str | None, str | None]:
    kind = m.WhichOneof("value")
    if kind is None:
        return None, None
    if kind in ("dataset_value", "template_value", "bytes_value"):
        what = {"dataset_value": "DataSet", "template_value": "Template"}.get(
            kind, _NAMES.get(datatype or 0, "Bytes") if datatype not in range(22, 35) else "array"
        )
        return None, f"{what} values are not stored by Millstream yet"
    raw = getattr(m, kind)
    if kind in ("int_value", "long_value"):
        bits = _SIGNED_BITS.get(datatype or 0)
        return (_signed(raw, bits) if bits else raw), None
    if kind in ("float_value", "double_value"):
        if not math.isfinite(raw):
            return None, f"{raw} is not a finite number"
        return float(raw), None
    return raw, None


def _parse(data: bytes) -> Any:
    msg = Payload()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PayloadError("bad_protobuf", f"not a Sparkplug B payload: {exc}") from None
    return msg


def _inflate(msg: Any) -> Any:
    """The payload inside a compressed one (DEFLATE or GZIP, as its `algorithm` metric says)."""
    algorithm = next(
        (
            m.string_value
            for m in msg.metrics
            if m.name == "algorithm" and m.HasField("string_value")
        ),
        "DEFLATE",
    ).upper()
    if algorithm not in ("DEFLATE", "GZIP"):
        raise PayloadError("unsupported_value", f"compression {algorithm!r} is not supported")
    # zlib's wbits: 15 a zlib stream (what pako.deflate writes), 31 gzip.
    inflater = zlib.decompressobj(31 if algorithm == "GZIP" else 15)
    try:
        # Bounded, so a small bomb cannot take the hub's memory: the inflated payload obeys the
        # same limit as any payload on the wire.
        inner = inflater.decompress(msg.body, MAX_PAYLOAD_BYTES + 1)
    except zlib.error as exc:
        raise PayloadError("bad_protobuf", f"compressed body does not inflate: {exc}") from None
    if len(inner) > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail:
        raise PayloadError("too_large", "the compressed payload inflates to over 1 MiB")
    return _parse(inner)


def decode(data: bytes) -> SpbPayload:
    """Parse a Sparkplug B payload, compressed or not (raises `PayloadError`: reason
    `bad_protobuf`, or `too_large`/`unsupported_value` for a compressed one)."""
    msg = _parse(data)
    if msg.uuid == COMPRESSED_UUID:
        msg = _inflate(msg)
    metrics = []
    for m in msg.metrics:
        datatype = m.datatype if m.HasField("datatype") else None
        value, refused = (None, None) if m.is_null else _value(m, datatype)
        if datatype is not None and datatype in (16, 19, 20, 21) and refused is None:
            refused = f"{_NAMES[datatype]} values are not stored by Millstream yet"
        metrics.append(
            SpbMetric(
                name=m.name if m.HasField("name") else None,
                alias=m.alias if m.HasField("alias") else None,
                ts=m.timestamp if m.HasField("timestamp") else None,
                datatype=datatype,
                value=value,
                is_null=m.is_null,
                is_historical=m.is_historical,
                is_transient=m.is_transient,
                quality=_quality(m.properties) if m.HasField("properties") else "good",
                refused=refused,
            )
        )
    return SpbPayload(
        timestamp=msg.timestamp if msg.HasField("timestamp") else None,
        seq=msg.seq if msg.HasField("seq") else None,
        metrics=metrics,
        uuid=msg.uuid if msg.HasField("uuid") else None,
    )


def encode(payload: SpbPayload) -> bytes:
    """Serialise a payload (names and/or aliases, values by their declared data type)."""
    msg = Payload()
    if payload.timestamp is not None:
        msg.timestamp = payload.timestamp
    if payload.seq is not None:
        msg.seq = payload.seq
    if payload.uuid is not None:
        msg.uuid = payload.uuid
    for m in payload.metrics:
        _encode_metric(msg.metrics.add(), m)
    return bytes(msg.SerializeToString())


def _encode_metric(out: Any, m: SpbMetric) -> None:
    if m.name is not None:
        out.name = m.name
    if m.alias is not None:
        out.alias = m.alias
    if m.ts is not None:
        out.timestamp = m.ts
    datatype = m.datatype
    if datatype is None and m.value is not None:
        datatype = datatype_of(m.value)
    if datatype is not None:
        out.datatype = datatype
    if m.is_historical:
        out.is_historical = True
    if m.is_transient:
        out.is_transient = True
    if m.quality != "good":
        out.properties.keys.append(QUALITY_PROPERTY)
        code = 0 if m.quality == "bad" else 500
        out.properties.values.add(type=DATATYPES["Int32"], int_value=code)
    if m.value is None or m.is_null:
        out.is_null = True
        return
    _set_value(out, datatype, m.value)


def _set_value(out: Any, datatype: int | None, value: float | int | bool | str) -> None:
    if datatype == DATATYPES["Boolean"]:
        out.boolean_value = bool(value)
    elif datatype in (DATATYPES["Float"],):
        out.float_value = float(value)
    elif datatype == DATATYPES["Double"]:
        out.double_value = float(value)
    elif datatype in _STRINGS:
        out.string_value = str(value)
    elif datatype in (1, 2, 3, 5, 6, 7):
        out.int_value = int(value) & 0xFFFF_FFFF  # two's complement in a uint32 (§6.4.16)
    else:  # Int64, UInt64, DateTime
        out.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF
