"""Per-machine batching: flush at `max_batch` readings or after `max_delay` (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.buffer.readings import Reading

__all__ = ["Batcher"]


@dataclass
class _Pending:
    started: float
    readings: list[Reading] = field(default_factory=list)


class Batcher:
    """Collect readings per device and hand out full or old-enough groups."""

    def __init__(self, max_batch: int = 1000, max_delay: float = 0.1) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._pending: dict[str, _Pending] = {}

    def add(self, device: str, readings: list[Reading], now: float) -> list[list[Reading]]:
        """Add readings for `device`; return the groups that became full."""
        out: list[list[Reading]] = []
        pending = self._pending.get(device)
        # By slices, not a step per reading: a poll's readings fill a group at a time.
        i, n = 0, len(readings)
        while i < n:
            if pending is None:
                pending = self._pending[device] = _Pending(now)
            room = self.max_batch - len(pending.readings)
            pending.readings.extend(readings[i : i + room])
            i += room
            if len(pending.readings) >= self.max_batch:
                out.append(pending.readings)
                del self._pending[device]
                pending = None
        return out

    def due(self, now: float) -> list[tuple[str, list[Reading]]]:
        """Return and forget every group older than `max_delay`."""
        ready = [d for d, p in self._pending.items() if now - p.started >= self.max_delay]
        return [(d, self._pending.pop(d).readings) for d in ready]

    def drain(self) -> list[tuple[str, list[Reading]]]:
        """Return and forget everything pending (shutdown)."""
        out = [(d, p.readings) for d, p in self._pending.items()]
        self._pending.clear()
        return out

    def next_deadline(self) -> float | None:
        """When the oldest pending group becomes due, or None if nothing is pending."""
        if not self._pending:
            return None
        return min(p.started for p in self._pending.values()) + self.max_delay
