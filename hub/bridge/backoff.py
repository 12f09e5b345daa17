"""Exponential backoff with jitter and a cap (pure: the caller sleeps)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays base, 2·base, 4·base … up to cap, each jittered to 50–100 %; `reset()` on success."""

    base_s: float = 0.5
    cap_s: float = 30.0
    _next: float = field(default=0.0, init=False)

    def delay(self, rand: float | None = None) -> float:
        """The next delay in seconds (pass `rand` in [0, 1) to make it deterministic)."""
        current = self._next or self.base_s
        self._next = min(current * 2, self.cap_s)
        r = random.random() if rand is None else rand  # noqa: S311 -- jitter, not crypto
        return current * (0.5 + r / 2)

    def reset(self) -> None:
        """Start again from `base_s` (after a success)."""
        self._next = 0.0
