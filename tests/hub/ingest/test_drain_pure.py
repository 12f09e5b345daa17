"""The drain budget's estimator (hub/ingest/drain.py): pure, times passed in."""

from __future__ import annotations

import pytest

from hub.ingest.drain import (
    DRAINING_READINGS,
    FLOOR_RPS,
    HEADROOM,
    LIVE_MARGIN,
    MAX_STEP,
    MIN_SHARE,
    DrainEstimator,
)


def test_starts_at_the_floor_and_keeps_its_estimate_without_traffic() -> None:
    est = DrainEstimator()
    assert est.update(100.0) == FLOOR_RPS
    est.capacity = 80_000.0
    assert est.update(200.0) == 80_000.0  # nothing committed: nothing learnt


def test_an_idle_hub_is_credited_with_what_it_would_do_busy_growing_by_steps() -> None:
    est = DrainEstimator()
    # 10 commits of 1,000 readings, each 10 ms, one per second: 1,000/s done, 100,000/s busy.
    for i in range(10):
        est.committed(90.0 + i, 90.01 + i, 1_000)
    first = est.update(100.0)
    assert first == FLOOR_RPS * MAX_STEP  # at most doubles per update
    for _ in range(10):
        last = est.update(100.0)
    assert last == pytest.approx(100_000, rel=0.01)


def test_a_saturated_hub_is_measured_at_its_throughput() -> None:
    est = DrainEstimator()
    est.capacity = 500_000.0  # an overestimate from lighter days
    for i in range(20):  # back to back: 5,000 readings per 100 ms = 50,000/s
        est.committed(98.0 + i * 0.1, 98.1 + i * 0.1, 5_000)
        est.sample(98.0 + i * 0.1, window_full=True)
    assert est.update(100.0) == pytest.approx(50_000, rel=0.05)


def test_busy_back_to_back_commits_are_the_throughput() -> None:
    est = DrainEstimator()
    for i in range(100):  # 10 s of commits without a gap: 10 × 1,000 readings per second
        est.committed(90.0 + i * 0.1, 90.0 + (i + 1) * 0.1, 1_000)
    for _ in range(10):
        est.update(100.0)
    assert est.capacity == pytest.approx(10_000, rel=0.05)


def test_the_budget_is_shared_among_the_agents_with_a_backlog() -> None:
    est = DrainEstimator()
    est.capacity = 100_000.0
    for n in range(10):
        est.agent(f"a{n}", 0, 50.0)  # heard from, nothing waiting
    budget = est.budget(60.0, 1)
    # Nobody reports a backlog yet (right after an outage): every agent known shares it.
    assert budget.per_agent == pytest.approx(HEADROOM * 100_000 / 10)
    est.agent("a1", DRAINING_READINGS + 1, 60.0)
    est.agent("a2", 10 * DRAINING_READINGS, 60.0)
    budget = est.budget(61.0, 2)
    assert (budget.draining, budget.capacity) == (2, 100_000.0)
    assert budget.per_agent == pytest.approx(HEADROOM * 100_000 / 2)
    # An agent not heard from for minutes no longer counts.
    assert est.budget(300.0, 3).draining == 0


def test_a_saturated_hub_is_measured_from_when_it_became_saturated() -> None:
    est = DrainEstimator()
    # A drain's first second: small commits as the agents reconnect (10,000 in 1 s) …
    for i in range(10):
        est.committed(97.0 + i * 0.1, 97.0 + i * 0.1 + 0.02, 1_000)
        est.sample(97.0 + i * 0.1, window_full=False)
    # … then the window is full and commits run back to back at 150,000/s for a second.
    for i in range(10):
        est.committed(98.0 + i * 0.1, 98.1 + i * 0.1, 15_000)
        est.sample(98.0 + i * 0.1, window_full=True)
    # Its first second would have dragged a throughput over the last 2 s down to 80,000/s.
    assert est.update(99.0) == pytest.approx(150_000, rel=0.05)


def test_live_readings_keep_their_room_and_backlogs_share_the_rest() -> None:
    est = DrainEstimator()
    est.capacity = 100_000.0
    est.agent("a0", 10 * DRAINING_READINGS, 50.0, live_rate=10_000.0)
    est.agent("a1", 10 * DRAINING_READINGS, 50.0, live_rate=10_000.0)
    budget = est.budget(51.0, 1)
    expected = (HEADROOM * 100_000 - LIVE_MARGIN * 20_000) / 2
    assert budget.per_agent == pytest.approx(expected)
    # However much is live, backlogs are never starved below half of the capacity.
    est.agent("a1", 10 * DRAINING_READINGS, 51.0, live_rate=90_000.0)
    assert est.budget(52.0, 2).per_agent == pytest.approx(MIN_SHARE * 100_000 / 2)


@pytest.mark.parametrize("now", [100.9, 101.2, 101.5, 101.8, 102.1, 102.4])
def test_big_commits_measure_a_rate_not_steps_of_whole_commits(now: float) -> None:
    """Saturated at 70,000/s in commits of 50,000 readings (0.5 s each, validation holding the
    hub back between them): counted whole, one or two of them in the last second or two read
    as 42,000-94,000/s depending on when it is asked."""
    est = DrainEstimator()
    period = 50_000 / 70_000
    start = 98.0
    while start + 0.5 <= now:
        est.committed(start, start + 0.5, 50_000)
        start += period
    t = 98.0
    while t <= now:
        est.sample(t, window_full=t >= 100.0)
        t += 0.5
    assert est.update(now) == pytest.approx(70_000, rel=0.15)
