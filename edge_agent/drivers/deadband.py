"""Report a value only when it moved further than its deadband since the last report, or when it
has not been reported for its `max_interval` (a heartbeat: a steady machine is not a silent one).
Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

from edge_agent.drivers.base import Sample, Value

__all__ = ["DeadbandFilter", "exceeds_deadband"]

_NEVER = 1 << 62
_value = itemgetter(2)  # Sample.value


def exceeds_deadband(last: Value, value: Value, deadband: float | None) -> bool:
    """True when `value` should be reported after `last` was (numbers: |Δ| > deadband).

    Without a deadband every new value is reported, except "still no value" (a tag that stays
    bad is reported once, not every poll).
    """
    if last is None and value is None:
        return False
    if deadband is None or last is None or value is None:
        return True
    if isinstance(value, bool) or isinstance(last, bool):
        return value != last
    if isinstance(value, int | float) and isinstance(last, int | float):
        return abs(value - last) > deadband
    return value != last


@dataclass(slots=True)
class DeadbandFilter:
    """Per-tag memory of the last reported sample; a quality change is always reported."""

    deadbands: dict[str, float]
    # Tag → ms: report at least this often (by sample time); tags not named have no heartbeat.
    max_intervals: dict[str, int] = field(default_factory=dict)
    _last: dict[str, Sample] = field(default_factory=dict)

    def admit(self, sample: Sample) -> bool:
        """Whether to report `sample`; remembers it when it is reported."""
        last = self._last.get(sample.tag)
        deadband = self.deadbands.get(sample.tag)
        if (
            last is None
            or last.quality != sample.quality
            or exceeds_deadband(last.value, sample.value, deadband)
            or sample.ts - last.ts >= self.max_intervals.get(sample.tag, _NEVER)
        ):
            self._last[sample.tag] = sample
            return True
        return False

    def filter(self, samples: list[Sample]) -> list[Sample]:
        """The samples of one poll worth reporting."""
        if self.deadbands:
            return [s for s in samples if self.admit(s)]
        # No deadband: every value is reported (heartbeats are moot), so only "still no value"
        # needs the memory: a value forgets the tag's last sample, a missing one is judged.
        if not self._last and None not in map(_value, samples):
            return samples  # the common poll: nothing to judge or forget (searched in C)
        out = []
        last = self._last
        for s in samples:
            if s.value is not None:
                if last:
                    last.pop(s.tag, None)
                out.append(s)
            elif self.admit(s):
                out.append(s)
        return out
