"""Driver samples → buffer readings (pure): what the wire contract cannot carry is not buffered."""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_agent.buffer import Reading
from edge_agent.drivers.base import Sample

__all__ = ["to_readings"]


def to_readings(samples: Iterable[Sample]) -> tuple[list[Reading], int]:
    """Return (readings, skipped): samples without a finite value are counted, not buffered.

    A `bad` sample without a value is a read error, not a reading (ARCHITECTURE.md, wire v1);
    it shows up in the device's error count instead.
    """
    out: list[Reading] = []
    skipped = 0
    for s in samples:
        v = s.value
        if v is None or (type(v) is float and not math.isfinite(v)):
            skipped += 1
            continue
        # A Sample is (tag, ts, value, quality), a Reading (tag, ts, v, q): the same tuple, made
        # in C instead of through the NamedTuple constructor (one per reading, the hot path).
        out.append(_as_reading(Reading, s))
    return out, skipped


_as_reading = tuple.__new__
