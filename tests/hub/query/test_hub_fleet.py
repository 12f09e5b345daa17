"""judge (pure): a machine's state from its own status, its agent's state and its newest value."""

from __future__ import annotations

import pytest

from hub.query.fleet import STALE_GRACE_MS, STALE_MS, Judged, MachineFacts, judge, stale_after_ms

NOW = 1_800_000_000_000


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # The agent's state comes first: its machines cannot be reached without it.
        (
            MachineFacts("online", None, NOW, agent="line3-pc", agent_state="offline"),
            Judged("offline", "agent line3-pc is offline"),
        ),
        (
            MachineFacts(None, None, NOW, agent="line3-pc", agent_state="faulted"),
            Judged("faulted", "agent line3-pc is faulted"),
        ),
        # Then the machine's own status, with its detail.
        (
            MachineFacts("faulted", "E42 spindle", NOW, agent="pc", agent_state="online"),
            Judged("faulted", "E42 spindle"),
        ),
        (MachineFacts("offline", None, NOW), Judged("offline", "machine reported offline")),
        (MachineFacts("faulted", None, NOW), Judged("faulted", "machine reported a fault")),
        # Then how old its newest value is.
        (MachineFacts(None, None, None), Judged("unknown", "no data received yet")),
        (
            MachineFacts("online", None, NOW - STALE_MS - 1000, agent="pc", agent_state="online"),
            Judged("stale", "no reading for 61 s"),
        ),
        (MachineFacts(None, None, NOW - STALE_MS), Judged("online", "data flowing")),
        (
            MachineFacts(None, None, NOW, agent="pc", agent_state="online", poll_errors=3),
            Judged("online", "3 poll errors since agent start"),
        ),
        # An agent state without a known agent (never happens from storage) changes nothing.
        (MachineFacts(None, None, NOW, agent_state="offline"), Judged("online", "data flowing")),
    ],
)
def test_judge(facts: MachineFacts, expected: Judged) -> None:
    assert judge(facts, NOW) == expected


def test_a_machine_is_stale_only_after_its_declared_quiet_time() -> None:
    # A deadbanded machine declares a 5-minute heartbeat: quiet for 4 minutes is steady, not
    # stale; quiet past 5 minutes plus the grace is stale. Without a declaration: the fixed minute.
    steady = MachineFacts("online", None, NOW - 240_000, quiet_ms=300_000)
    assert judge(steady, NOW).state == "online"
    assert stale_after_ms(300_000) == 300_000 + STALE_GRACE_MS
    silent = MachineFacts("online", None, NOW - 300_000 - STALE_GRACE_MS - 1, quiet_ms=300_000)
    assert judge(silent, NOW).state == "stale"
    assert judge(MachineFacts("online", None, NOW - STALE_MS - 1), NOW).state == "stale"
    assert stale_after_ms(None) == STALE_MS
