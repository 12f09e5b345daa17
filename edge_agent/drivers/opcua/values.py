"""Turn OPC-UA variant values and timestamps into wire-contract values (number, bool or string)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

__all__ = ["WireValue", "epoch_ms", "wire_value"]

WireValue = bool | int | float | str | None

# Strings on the wire are limited to 1 KiB by the hub (ARCHITECTURE.md, wire contract v1).
_MAX_TEXT = 1024


def epoch_ms(moment: dt.datetime) -> int:
    """Integer epoch milliseconds UTC; naive datetimes are UTC, as asyncua decodes them."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def wire_value(value: Any) -> WireValue:  # noqa: PLR0911 -- one return per OPC-UA type family
    """Numbers, bools and strings pass; other OPC-UA types become text; NaN/inf become None."""
    if value is None or isinstance(value, bool | int | str):
        return _clip(value) if isinstance(value, str) else value
    if isinstance(value, float):
        # The hub rejects non-finite numbers; a NaN sensor value is "no value", not a reading.
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = getattr(value, "Text", None)  # LocalizedText
    if isinstance(text, str):
        return _clip(text)
    if isinstance(value, bytes):
        return _clip(value.hex())
    if isinstance(value, list | tuple):
        return _clip(json.dumps([wire_value(v) for v in value]))
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT]
