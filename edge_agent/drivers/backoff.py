"""Reconnect delays: exponential, capped, jittered so a plant of agents does not stampede a PLC."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays `initial_s * factor**n`, capped at `cap_s`, scaled by a random factor in [0.5, 1]."""

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the sequence."""
        base = min(self.cap_s, self.initial_s * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        # Jitter keeps its lower bound at half the base so the cap still means "back off".
        return base * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        """Start over after a successful connection."""
        self.attempt = 0
