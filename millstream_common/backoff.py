"""Reconnect delays for every peer: the agent's PLCs, OPC-UA servers and broker, the hub's
database, broker, Kafka and Redis.

Exponential, capped and jittered so a plant of agents (or a set of hub instances) that lost a
peer together does not stampede it when it returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["DEVICE_RETRY_CAP_S", "Backoff", "backoff_delay", "device_backoff"]

# A device is retried at least this often while it is down, so the agent sees it back within
# seconds (a status promise: online again within 10 s of recovery). One connection attempt to
# one PLC every 5 s costs nothing; the broker, shared by a whole plant, keeps the longer cap.
DEVICE_RETRY_CAP_S = 5.0


def backoff_delay(attempt: int, base: float, cap: float, rnd: float) -> float:
    """Delay before reconnect `attempt` (0-based); `rnd` in [0, 1) supplies the jitter.

    "Equal jitter": half the exponential step is fixed, half random, so the delay never
    collapses to zero and the cap still means "back off", yet peers that dropped together
    spread out.
    """
    step = min(cap, base * (2.0 ** min(attempt, 64)))
    return step / 2 + step / 2 * rnd


@dataclass(slots=True)
class Backoff:
    """Stateful `backoff_delay`: one per connection, `reset()` after a success."""

    initial_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the sequence."""
        delay = backoff_delay(self.attempt, self.initial_s, self.cap_s, self.rng.random())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start over after a successful connection."""
        self.attempt = 0


def device_backoff() -> Backoff:
    """Retry delays for a device (PLC, meter, OPC-UA server): capped at `DEVICE_RETRY_CAP_S`."""
    return Backoff(initial_s=0.5, cap_s=DEVICE_RETRY_CAP_S)
