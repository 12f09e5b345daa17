"""Per-site live channels (pure): which channel an update goes out on, which channels an
instance joins and leaves for the sites its clients watch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import wire
from hub.bridge.redis.model import (
    Update,
    channel_changes,
    channels_for,
    site_channel,
    updates_of,
)
from hub.storage import TelemetryBatch


def test_an_update_goes_out_on_its_sites_channel_under_the_configured_prefix() -> None:
    batch = TelemetryBatch("plant-1", "l1", "press7", "ag", 1, [wire.Reading(tag="t", ts=1, v=1.0)])
    [update] = updates_of("o", [batch])
    assert update.site == "plant-1"
    assert site_channel("ms:live", update.site) == "ms:live:plant-1"
    # Another deployment on the same Redis keeps apart with its own prefix.
    assert site_channel("other:live", "plant-1") == "other:live:plant-1"


def test_watched_sites_are_one_channel_each() -> None:
    assert channels_for("ms:live", []) == frozenset()
    assert channels_for("ms:live", ["a", "b", "a"]) == {"ms:live:a", "ms:live:b"}


def test_channel_changes_join_what_is_new_and_leave_what_is_no_longer_watched() -> None:
    assert channel_changes(set(), {"c:a", "c:b"}) == (["c:a", "c:b"], [])
    assert channel_changes({"c:a", "c:b"}, {"c:b", "c:c"}) == (["c:c"], ["c:a"])
    assert channel_changes({"c:a"}, {"c:a"}) == ([], [])
    assert channel_changes({"c:a", "c:b"}, set()) == ([], ["c:a", "c:b"])


segments = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,6}", fullmatch=True)


@given(st.sets(segments, max_size=6), st.sets(segments, max_size=6))
def test_applying_the_changes_gives_the_wanted_channels(now: set[str], then: set[str]) -> None:
    joined, wanted = channels_for("p", now), channels_for("p", then)
    join, leave = channel_changes(joined, wanted)
    assert (joined | set(join)) - set(leave) == wanted
    assert not set(join) & joined
    assert set(leave) <= joined


@given(segments, segments, segments)
def test_a_machine_is_in_the_site_of_its_first_segment(site: str, line: str, name: str) -> None:
    assert Update("o", f"{site}/{line}/{name}", ()).site == site
