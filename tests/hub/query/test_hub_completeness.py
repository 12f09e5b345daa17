"""completeness (pure): agent-reported production where there is some, else the median rate."""

from __future__ import annotations

from hub.query import completeness, median_rate

M = 60_000


def test_reported_minutes_expect_the_reported_count_others_the_median() -> None:
    stored = {0: 60, M: 60, 2 * M: 45, 3 * M: 60}
    minutes = completeness(stored, 0, 5 * M, {2 * M: 60, 3 * M: 80})
    assert [(m.stored, m.expected, m.reported) for m in minutes] == [
        (60, 60, False),
        (60, 60, False),
        (45, 60, True),  # a gap of 15
        (60, 80, True),
        (0, 60, False),
    ]
    assert minutes[2].ratio == 0.75


def test_without_reports_it_is_the_median_estimate() -> None:
    stored = {0: 10, M: 30, 2 * M: 30}
    assert median_rate(stored) == 30
    assert [m.expected for m in completeness(stored, 0, 3 * M)] == [30, 30, 30]
    assert completeness(stored, 0, 3 * M, {}) == completeness(stored, 0, 3 * M)


def test_a_silent_machine_expects_what_was_reported_or_nothing() -> None:
    minutes = completeness({}, 0, 2 * M, {M: 12})
    assert [(m.expected, m.ratio) for m in minutes] == [(0, 1.0), (12, 0.0)]
