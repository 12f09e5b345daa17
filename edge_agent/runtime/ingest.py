"""Driver samples → buffer readings (pure): what the wire contract cannot carry is not buffered."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from operator import itemgetter

from edge_agent.buffer import Reading
from edge_agent.drivers.base import Sample

__all__ = ["to_readings"]

# Value kinds that are always a reading: no None, no NaN or ±inf among them.
_ALWAYS_FINITE = frozenset({int, bool, str})
_value = itemgetter(2)
# A Sample is (tag, ts, value, quality), a Reading (tag, ts, v, q): the same tuple, made in C
# instead of through the NamedTuple constructor (one per reading, the hot path).
_as_reading = partial(tuple.__new__, Reading)


def to_readings(samples: Sequence[Sample]) -> tuple[list[Reading], int]:
    """Return (readings, skipped): samples without a finite value are counted, not buffered.

    A `bad` sample without a value is a read error, not a reading (ARCHITECTURE.md, wire v1);
    it shows up in the device's error count instead.
    """
    # The common poll (integers from registers, strings) is judged and copied without a
    # Python step per reading: the kinds of its values are collected in C.
    if set(map(type, map(_value, samples))) <= _ALWAYS_FINITE:
        return list(map(_as_reading, samples)), 0
    out: list[Reading] = []
    skipped = 0
    for s in samples:
        v = s.value
        if v is None or (type(v) is float and not math.isfinite(v)):
            skipped += 1
            continue
        out.append(_as_reading(s))
    return out, skipped
