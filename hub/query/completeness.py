"""Completeness per machine per minute (pure): readings stored vs readings expected.

`expected` comes from the machine's agent where it reported production for that minute (agent
status `devices.{machine}.produced`, stored in `produced_minutes`): the agent knows exactly how
many readings it made. Minutes without a report (older agents, or the agent was down) fall back to
an estimate from the machine's own history: the median of its non-empty stored minutes in the
window (a steady poller stores the same count each minute). Minutes below `expected` are gaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median

__all__ = ["MinuteCompleteness", "completeness", "median_rate"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class MinuteCompleteness:
    """One minute of one machine; `reported` says whether `expected` came from the agent."""

    minute: int
    stored: int
    expected: int
    reported: bool = False

    @property
    def ratio(self) -> float:
        """stored / expected, capped at 1 (1.0 when nothing was expected)."""
        return 1.0 if self.expected == 0 else min(1.0, self.stored / self.expected)


def median_rate(stored_per_minute: Mapping[int, int]) -> int:
    """The machine's median count over its non-empty stored minutes (0 if none)."""
    nonzero = [c for c in stored_per_minute.values() if c > 0]
    return round(median(nonzero)) if nonzero else 0


def completeness(
    stored_per_minute: Mapping[int, int],
    start_ms: int,
    end_ms: int,
    reported_per_minute: Mapping[int, int] | None = None,
) -> list[MinuteCompleteness]:
    """Every whole minute in [start_ms, end_ms): agent-reported production, else median rate."""
    estimate = median_rate(stored_per_minute)
    reported = reported_per_minute or {}
    first = start_ms - start_ms % MINUTE_MS
    out = []
    for m in range(first, end_ms, MINUTE_MS):
        produced = reported.get(m)
        out.append(
            MinuteCompleteness(
                m,
                stored_per_minute.get(m, 0),
                estimate if produced is None else produced,
                produced is not None,
            )
        )
    return out
