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
    tags: set[str] = set()  # a batch names few tags many times: match each once
    for r in readings:
        tag, ts, v, q = r.tag, r.ts, r.v, r.q
        if tag not in tags:
            if type(tag) is not str or not _TAG.fullmatch(tag):
                return False
            tags.add(tag)
        if not (
            type(ts) is int
            and 0 <= ts <= MAX_TS
            and type(q) is str
            and q in _QUALITIES
            and _value_ok(v)
        ):
            return False
    return True


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
