"""The telemetry rules `wire.models` states for pydantic, as plain Python for the encoding side.

The agent encodes every reading it buffers (edge_agent/buffer), and validating the payload it
has just built with pydantic cost a quarter of its CPU at its ceiling (issue "overload": 25.9 %
in `model_validate_json`). What it built itself needs only the checks, not a parse: this module
answers "would the hub's model accept these readings?" in one pass over the Python values.
`encode_telemetry` falls back to the model whenever this says no (or the payload is over the
size limit), so an error reads exactly as the hub would word it, and a disagreement could only
cost time, never let through a batch the hub refuses.

The two must never drift: tests/wire/test_wire_plain.py generates readings with hypothesis —
valid and broken in every way the models know — and asserts both judge each the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from wire.limits import (
    MAX_ABS_NUMBER,
    MAX_READINGS,
    MAX_SEQ,
    MAX_STRING_BYTES,
    MAX_TS,
    SEGMENT_PATTERN,
    TAG_PATTERN,
)

__all__ = ["plainly_valid"]

_SEGMENT = re.compile(SEGMENT_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_QUALITIES = frozenset({"good", "uncertain", "bad"})
_INT64 = (-(2**63), 2**63 - 1)
# Tag names already matched: the agent sends the same few thousand names again and again.
_KNOWN_TAGS: set[str] = set()
_KNOWN_TAGS_MAX = 65_536


def plainly_valid(src: Any, seq: Any, readings: Sequence[Any]) -> bool:
    """True when `TelemetryBody` would accept {v: 1, src, seq, readings} as JSON encodes them
    (readings with `tag`, `ts`, `v`, `q`); False when it would refuse them or this cannot tell."""
    if not (
        type(src) is str
        and _SEGMENT.fullmatch(src)
        and type(seq) is int
        and 0 <= seq <= MAX_SEQ
        and 1 <= len(readings) <= MAX_READINGS
    ):
        return False
    tags = _KNOWN_TAGS
    if len(tags) > _KNOWN_TAGS_MAX:  # bounded: tag names from a hostile source cannot grow it
        tags.clear()
    for r in readings:
        tag, ts, v, q = r.tag, r.ts, r.v, r.q
        kind = type(v)
        # The common value kinds inline; a comparison with NaN or ±inf is false, so floats
        # need no isfinite of their own.
        if (
            type(tag) is not str
            or (tag not in tags and not _new_tag(tag))
            or type(ts) is not int
            or not 0 <= ts <= MAX_TS
            or type(q) is not str
            or q not in _QUALITIES
            or (kind is float and not -MAX_ABS_NUMBER <= v <= MAX_ABS_NUMBER)
            or (kind is int and not _INT64[0] <= v <= _INT64[1] and not _value_ok(v))
            or (kind is not float and kind is not int and kind is not bool and not _value_ok(v))
        ):
            return False
    return True


def _new_tag(tag: str) -> bool:
    """Whether a tag name not seen before is valid (and remember it if so)."""
    if _TAG.fullmatch(tag):
        _KNOWN_TAGS.add(tag)
        return True
    return False


def _value_ok(v: Any) -> bool:  # noqa: PLR0911 -- one return per JSON value kind
    kind = type(v)
    if kind is float:
        return bool(math.isfinite(v) and -MAX_ABS_NUMBER <= v <= MAX_ABS_NUMBER)
    if kind is bool:
        return True
    if kind is int:
        if _INT64[0] <= v <= _INT64[1]:
            return True
        # A wider integer is a JSON number the model takes as a float, if storable.
        return bool(-MAX_ABS_NUMBER <= v <= MAX_ABS_NUMBER)
    if kind is str:
        if "\x00" in v:
            return False
        return len(v) * 4 <= MAX_STRING_BYTES or len(v.encode()) <= MAX_STRING_BYTES
    return False  # None, containers, subclasses: the model (and its message) decide
