"""completeness (pure): the schedule or agent-reported production, else the median rate; reasons."""

from __future__ import annotations

from hub.query import Outage, completeness, median_rate

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


def test_a_device_outage_is_a_gap_with_its_reason_not_100_percent() -> None:
    # 3 tags polled every second: 180 per minute scheduled. The device was down from 1.5 min to
    # 3.2 min: the agent produced nothing then (and said so), yet the minutes are gaps, with why.
    outage = Outage(
        "device", "no answer from 10.0.0.5:502 (unit 1) since 03:12:04", 90_000, 192_000
    )
    stored = {0: 180, M: 90, 2 * M: 0, 3 * M: 144, 4 * M: 180}
    produced = {0: 180, M: 90, 2 * M: 0, 3 * M: 144, 4 * M: 180}
    minutes = completeness(stored, 0, 5 * M, produced, scheduled_per_minute=180.0, outages=[outage])
    assert [(m.stored, m.expected) for m in minutes] == [
        (180, 180),
        (90, 180),
        (0, 180),
        (144, 180),
        (180, 180),
    ]
    assert [m.reason for m in minutes] == [
        None,
        "device offline: no answer from 10.0.0.5:502 (unit 1) since 03:12:04",
        "device offline: no answer from 10.0.0.5:502 (unit 1) since 03:12:04",
        "device offline: no answer from 10.0.0.5:502 (unit 1) since 03:12:04",
        None,
    ]


def test_report_by_exception_tags_count_as_complete_and_an_agent_outage_is_named() -> None:
    # A deadbanded machine schedules nothing: what its agent reported is what counts, complete
    # while it is online. While its agent was offline (still ongoing) nothing was reported or
    # stored: nothing is counted as missing, but the minutes say why they are empty.
    agent_down = Outage("agent", "agent pc-3 offline", 2 * M, None)
    minutes = completeness(
        {0: 4, M: 2}, 0, 4 * M, {0: 4, M: 2}, scheduled_per_minute=0.0, outages=[agent_down]
    )
    assert [(m.expected, m.ratio, m.reason) for m in minutes] == [
        (4, 1.0, None),
        (2, 1.0, None),
        (0, 1.0, "agent pc-3 offline"),
        (0, 1.0, "agent pc-3 offline"),
    ]
    # A polled machine under the same agent outage: gaps, named.
    polled = completeness(
        {0: 60}, 0, 3 * M, {0: 60}, scheduled_per_minute=60.0, outages=[agent_down]
    )
    assert [(m.stored, m.expected, m.reason) for m in polled] == [
        (60, 60, None),
        (0, 60, None),  # a gap nothing explains: shown without a reason
        (0, 60, "agent pc-3 offline"),
    ]


def test_readings_dropped_at_the_edge_are_a_gap_that_says_so() -> None:
    dropped = Outage(
        "drop", "dropped at the edge (agent pc-1's buffer full): 90 readings", M, M + 30_000
    )
    minutes = completeness(
        {0: 60, M: 30, 2 * M: 60}, 0, 3 * M, {0: 60, M: 60, 2 * M: 60}, outages=[dropped]
    )
    assert [(m.stored, m.expected, m.reason) for m in minutes] == [
        (60, 60, None),
        (30, 60, "dropped at the edge (agent pc-1's buffer full): 90 readings"),
        (60, 60, None),
    ]
