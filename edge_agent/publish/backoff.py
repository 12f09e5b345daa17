"""Reconnect delays: exponential, capped, jittered so a line of agents spreads out."""

from __future__ import annotations

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, base: float, cap: float, rnd: float) -> float:
    """Delay before reconnect `attempt` (0-based); `rnd` in [0, 1) supplies the jitter.

    "Equal jitter": half the exponential step is fixed, half random, so the delay never
    collapses to zero yet two agents that dropped together spread out.
    """
    step = min(cap, base * (2.0 ** min(attempt, 32)))
    return step / 2 + step / 2 * rnd
