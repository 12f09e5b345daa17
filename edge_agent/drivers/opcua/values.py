"""Turn OPC-UA variant values and timestamps into wire-contract values (number, bool or string)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

__all__ = ["WireValue", "clip_text", "epoch_ms", "wire_value"]

WireValue = bool | int | float | str | None

# Strings on the wire are limited to 1 KiB of UTF-8 by the hub (wire.MAX_STRING_BYTES).
_MAX_TEXT = 1024


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def epoch_ms(moment: dt.datetime) -> int:
    """Integer epoch milliseconds UTC; naive datetimes are UTC, as asyncua decodes them."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    # In integers: a float timestamp() * 1000 can land a millisecond short.
    return (moment - _EPOCH) // _MS


def wire_value(value: Any) -> WireValue:  # noqa: PLR0911 -- one return per OPC-UA type family
    """Numbers, bools and strings pass; other OPC-UA types become text; NaN/inf become None."""
    if value is None or isinstance(value, bool | int | str):
        return clip_text(value) if isinstance(value, str) else value
    if isinstance(value, float):
        # The hub rejects non-finite numbers; a NaN sensor value is "no value", not a reading.
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = getattr(value, "Text", None)  # LocalizedText
    if isinstance(text, str):
        return clip_text(text)
    if isinstance(value, bytes):
        return clip_text(value.hex())
    if isinstance(value, list | tuple):
        return clip_text(json.dumps([wire_value(v) for v in value]))
    return clip_text(str(value))


def clip_text(text: str) -> str:
    """`text` up to its first NUL, cut to the hub's 1 KiB of UTF-8."""
    # PLC strings (S7 STRING behind OPC-UA, for one) arrive padded with NULs, and storage cannot
    # hold U+0000: end the string at its first NUL, as the PLC's own C string does.
    text = text.split("\x00", 1)[0]
    if len(text) * 4 <= _MAX_TEXT:
        return text
    # The limit is in UTF-8 bytes; cut on a character boundary.
    return text.encode()[:_MAX_TEXT].decode(errors="ignore")
