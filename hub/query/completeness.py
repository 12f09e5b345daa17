"""Completeness per machine per minute (pure): readings stored vs readings expected, and why
the missing ones are missing.

`expected` is the larger of two counts, so neither a silent agent nor a silent device hides a gap:

- what the machine's **schedule** asks for: its tags sent on every poll × polls per minute, as
  its agent declares in the machine's meta message (`scheduled_per_minute`). A device that is
  down produces nothing, but its schedule still expects readings: the outage shows as a gap.
  Tags sent only on change (deadband, OPC-UA subscription) are not in the schedule: they count
  as complete while the machine is online.
- what the agent **reported producing** in that minute (agent status `devices.{m}.produced`):
  exact, and it covers readings beyond the schedule (changes, heartbeats).

A machine that declares no schedule and reported nothing for a minute (older agents, devices
publishing directly) falls back to an estimate: the median of its non-empty stored minutes in
the window (a steady poller stores the same count each minute).

A minute with fewer stored than expected, or nothing expected at all, carries a `reason` when an
outage overlaps it: the device offline (with the agent's words) or the agent polling it offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

__all__ = ["MinuteCompleteness", "Outage", "completeness", "median_rate"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Outage:
    """An interval in which the machine's device (`kind` device) or agent (`agent`) was offline,
    or whose readings its agent dropped at the edge (`drop`); `end_ms` None while it lasts."""

    kind: str
    reason: str
    start_ms: int
    end_ms: int | None

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """True when the outage covers part of [start_ms, end_ms)."""
        return self.start_ms < end_ms and (self.end_ms is None or self.end_ms >= start_ms)

    def words(self) -> str:
        """How a gap's reason reads: "device offline: no answer from …" / "agent pc-3 offline"."""
        return f"device offline: {self.reason}" if self.kind == "device" else self.reason


@dataclass(frozen=True, slots=True)
class MinuteCompleteness:
    """One minute of one machine; `reported` says whether `expected` came from the agent."""

    minute: int
    stored: int
    expected: int
    reported: bool = False
    reason: str | None = None  # why readings are missing, when something explains it

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
    *,
    scheduled_per_minute: float | None = None,
    outages: Sequence[Outage] = (),
) -> list[MinuteCompleteness]:
    """Every whole minute in [start_ms, end_ms), judged by the rules in the module docstring."""
    estimate = median_rate(stored_per_minute)
    reported = reported_per_minute or {}
    schedule = None if scheduled_per_minute is None else round(scheduled_per_minute)
    first = start_ms - start_ms % MINUTE_MS
    out = []
    for m in range(first, end_ms, MINUTE_MS):
        produced = reported.get(m)
        if schedule is not None:
            expected = max(schedule, produced or 0)
        else:
            expected = estimate if produced is None else produced
        stored = stored_per_minute.get(m, 0)
        reason = None
        # Nothing expected yet down: a machine of report-by-exception tags is complete only
        # while it is online, so its outage minutes carry the reason too.
        if stored < expected or expected == 0:
            why = [o.words() for o in outages if o.overlaps(m, m + MINUTE_MS)]
            reason = "; ".join(dict.fromkeys(why)) or None
        out.append(MinuteCompleteness(m, stored, expected, produced is not None, reason))
    return out
