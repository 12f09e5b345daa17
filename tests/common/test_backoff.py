"""Reconnect backoff (agent and hub): exponential, capped, jittered within [half, full]."""

from __future__ import annotations

import random

from millstream_common.backoff import Backoff, backoff_delay


def test_delays_grow_exponentially_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(initial_s=0.5, cap_s=30.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    bases = [min(30.0, 0.5 * 2**n) for n in range(12)]
    for delay, base in zip(delays, bases, strict=True):
        assert base / 2 <= delay <= base
    assert max(delays) <= 30.0
    assert len(set(delays)) == len(delays)  # jittered: no two agents march in step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_stateful_backoff_follows_the_pure_delay() -> None:
    rng, twin = random.Random(3), random.Random(3)
    backoff = Backoff(initial_s=1.0, cap_s=60.0, rng=rng)
    assert [backoff.next_delay() for _ in range(8)] == [
        backoff_delay(n, 1.0, 60.0, twin.random()) for n in range(8)
    ]
