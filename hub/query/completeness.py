"""Completeness per machine per minute (pure): readings stored vs readings expected.

What is approximated (docs/api.md): the wire contract's agent status carries a publish rate and
drop counts per *agent*, not per machine, and storage does not record which agent published a
machine. So a machine's expected readings per minute are estimated from its own history: the
median of its non-empty minutes in the window (a steady poller stores the same count each
minute). Minutes below that are gaps; drops agents reported are listed next to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median

__all__ = ["MinuteCompleteness", "completeness"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class MinuteCompleteness:
    """One minute of one machine."""

    minute: int
    stored: int
    expected: int

    @property
    def ratio(self) -> float:
        """stored / expected, capped at 1 (1.0 when nothing was expected)."""
        return 1.0 if self.expected == 0 else min(1.0, self.stored / self.expected)


def completeness(
    stored_per_minute: Mapping[int, int], start_ms: int, end_ms: int
) -> list[MinuteCompleteness]:
    """Every whole minute in [start_ms, end_ms), with the machine's median rate as expected."""
    nonzero = [c for c in stored_per_minute.values() if c > 0]
    expected = round(median(nonzero)) if nonzero else 0
    first = start_ms - start_ms % MINUTE_MS
    return [
        MinuteCompleteness(m, stored_per_minute.get(m, 0), expected)
        for m in range(first, end_ms, MINUTE_MS)
    ]
