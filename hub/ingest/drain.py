"""The drain budget (wire/drain.py): what this instance can commit, shared among the agents that
have a backlog, published retained so that a fleet coming back from a central outage drains as
fast as PostgreSQL commits — not faster, which would only overflow the broker's queues and make
agents republish batches whose receipts are stuck in them.

Capacity is measured, not configured: the readings committed over the last seconds divided by
the time a commit was in flight. A hub that commits back to back is measured at its throughput;
one that idles between commits is credited with what it would do busy (its commits then are
smaller, so this errs low, and the estimate rises as the drain makes them bigger). While the
in-memory window is full (the broker holds back messages), the throughput itself is the capacity.
`DrainEstimator` is pure (times are passed in); `publish_budget` is the loop that publishes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import wire

__all__ = ["DrainEstimator", "publish_budget"]

WINDOW_S = 10.0  # what the estimate looks back on
RECENT_S = 2.0  # what a saturated hub's throughput is measured over
PUBLISH_S = 0.5  # how often the budget is recomputed and, when it moved, republished
# An agent holding more than this many unsent readings is draining (a live agent holds about a
# batch between receipts).
DRAINING_READINGS = 2_000
AGENT_FRESH_S = 120.0  # an agent's last status counts this long (it reports every 10 s)
# Backlogs may take the capacity less what live readings use (measured, with a margin), less a
# twentieth for the estimate's noise — and never less than half of it.
HEADROOM = 0.95
LIVE_MARGIN = 1.25
MIN_SHARE = 0.5
FLOOR_RPS = 10_000.0  # until anything is measured
# The estimate at most doubles per update: a tiny sample misleads, and an overshoot costs only
# the queue the broker holds until the next update (the window fills; throughput then rules).
MAX_STEP = 2.0
PROBE_STEP = 1.25  # … and by a quarter within 10 s of a measurement at saturation
MIN_SATURATED_S = 0.4  # a saturated hub measured over less than this says too little


class DrainEstimator:
    """Capacity from commit timings and the draining agents from their status (pure)."""

    def __init__(self, floor_rps: float = FLOOR_RPS, window_s: float = WINDOW_S) -> None:
        self._floor = floor_rps
        self._window = window_s
        self._commits: deque[tuple[float, float, int]] = deque()  # (start, end, readings)
        self._full: deque[tuple[float, bool]] = deque()  # (when, window full)
        # id → (unsent readings, when seen, live readings/s)
        self._agents: dict[str, tuple[int, float, float]] = {}
        self.capacity = floor_rps
        self._saturated_at = float("-inf")  # when saturation last measured the capacity

    def committed(self, start: float, end: float, readings: int) -> None:
        """A transaction committed `readings` between `start` and `end` (monotonic seconds)."""
        self._commits.append((start, end, readings))

    def sample(self, now: float, *, window_full: bool) -> None:
        """Whether ingest's in-memory window is full now (the broker is holding back)."""
        self._full.append((now, window_full))

    def agent(self, agent_id: str, unsent: int, now: float, live_rate: float = 0.0) -> None:
        """An agent's status: `unsent` readings in its buffer, `live_rate` readings/s it
        publishes live."""
        self._agents[agent_id] = (unsent, now, live_rate)

    def live_rate(self, now: float) -> float:
        """Readings/s the agents heard from lately publish live. All of it, though with several
        instances each commits a share: erring towards room for live readings."""
        return sum(r for _, seen, r in self._agents.values() if now - seen <= AGENT_FRESH_S)

    def draining(self, now: float) -> tuple[int, int]:
        """(agents with a backlog, agents heard from lately)."""
        fresh = [n for n, seen, _ in self._agents.values() if now - seen <= AGENT_FRESH_S]
        return sum(n > DRAINING_READINGS for n in fresh), len(fresh)

    def update(self, now: float) -> float:
        """Re-estimate the capacity (readings/s) and return it."""
        since = now - self._window
        while self._commits and self._commits[0][1] < since:
            self._commits.popleft()
        while self._full and self._full[0][0] < since:
            self._full.popleft()
        recent = now - RECENT_S
        full = [(t, f) for t, f in self._full if t >= recent]
        if full and sum(f for _, f in full) >= len(full) / 2:
            # Saturated: what it commits per second is what it can — per second of the clock,
            # not of commit time (validation may be what holds it back, between commits), and
            # only since it became saturated: before, it committed what came, and a drain's
            # first second would drag the figure down for the next two.
            # Each commit counts with the share of it in that time, up to the last one's end:
            # whole commits of 50,000 readings a second or two apart would make steps of a third.
            since_full = next(t for t, f in full if f)
            last = [(s, e, n) for s, e, n in self._commits if e > since_full]
            end = max((e for _, e, _ in last), default=since_full)
            if end - since_full >= MIN_SATURATED_S:
                readings = sum(n * (e - max(s, since_full)) / max(e - s, 1e-6) for s, e, n in last)
                self.capacity = max(self._floor, readings / (end - since_full))
                self._saturated_at = now
            return self.capacity
        if not self._commits:
            return self.capacity  # nothing to learn from: keep what was measured
        readings = sum(n for _, _, n in self._commits)
        busy = _union(((max(s, since), e) for s, e, _ in self._commits), now)
        span = max(1e-3, now - max(since, self._commits[0][0]))
        measured = readings / span if busy >= 0.9 * span else readings / max(busy, 1e-3)
        # Above what saturation measured lately, only probe: commit time is what the estimate
        # credits, and when validation rather than committing limits the hub it overstates.
        step = PROBE_STEP if now - self._saturated_at < self._window else MAX_STEP
        self.capacity = max(self._floor, min(measured, self.capacity * step))
        return self.capacity

    def budget(self, now: float, ts_ms: int) -> wire.DrainBudget:
        """What each draining agent may send: what live readings leave of the capacity, shared
        among them (among every agent heard from while none reports a backlog yet, as right
        after an outage)."""
        draining, known = self.draining(now)
        backlogs = max(
            MIN_SHARE * self.capacity,
            HEADROOM * self.capacity - LIVE_MARGIN * self.live_rate(now),
        )
        share = backlogs / max(1, draining or known)
        return wire.DrainBudget(share, self.capacity, draining, ts_ms)


def _union(intervals: Iterable[tuple[float, float]], now: float) -> float:
    """Total length of the union of (start, end) intervals (ends clipped to `now`)."""
    total, reach = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        end = min(stop, now)
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class _Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> object:
        """Queue an MQTT PUBLISH."""


async def publish_budget(
    estimator: DrainEstimator,
    session: _Publisher,
    instance: str,
    window_full: Callable[[], bool],
    clock_ms: Callable[[], int],
) -> None:
    """Forever: sample, re-estimate and publish this instance's budget (retained) when it moved
    by a tenth or more, and at least every 30 s."""
    topic = wire.drain_topic(instance)
    last: wire.DrainBudget | None = None
    last_sent = 0.0
    while True:
        now = time.monotonic()
        estimator.sample(now, window_full=window_full())
        estimator.update(now)
        budget = estimator.budget(now, clock_ms())
        moved = last is None or abs(budget.per_agent - last.per_agent) > 0.1 * last.per_agent
        if moved or now - last_sent >= 30.0:
            session.publish(topic, wire.encode_drain(budget), 1, retain=True)
            last, last_sent = budget, now
        await asyncio.sleep(PUBLISH_S)
