"""The fan-out tells which sites its clients watch (pure): the first client of a site and the
last one leaving change the set, nothing else does; Redis joins those sites' channels only."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from hub.live import Fanout, Subscriber


def test_the_first_client_of_a_site_and_the_last_to_leave_change_the_watched_sites() -> None:
    told: list[frozenset[str]] = []
    fanout = Fanout(on_sites=told.append)
    a, b = Subscriber(), Subscriber()
    fanout.add(a)
    fanout.add(b)
    fanout.subscribe(a, "s1/l1/m1", None)
    fanout.subscribe(a, "s1/l1/m2", frozenset({"t"}))  # a series of another machine of s1
    fanout.subscribe(b, "s1/l1/m1", None)
    fanout.subscribe(b, "s2/l1/m1", None)
    assert told == [{"s1"}, {"s1", "s2"}]
    fanout.unsubscribe(a, "s1/l1/m1")  # b still watches it, and a still watches m2
    fanout.remove(b)  # s2's only client leaves
    assert told[-1] == {"s1"}
    fanout.unsubscribe(a, "s1/l1/m2")
    assert told == [{"s1"}, {"s1", "s2"}, {"s1"}, set()]
    assert fanout.sites == frozenset()


def test_unsubscribing_what_was_never_subscribed_changes_nothing() -> None:
    told: list[frozenset[str]] = []
    fanout = Fanout(on_sites=told.append)
    sub = Subscriber()
    fanout.add(sub)
    fanout.unsubscribe(sub, "s1/l1/m1")
    fanout.remove(sub)
    assert told == []


machines = st.sampled_from([f"s{s}/l1/m{m}" for s in range(3) for m in range(2)])
ops = st.lists(
    st.tuples(st.sampled_from(["subscribe", "unsubscribe", "remove"]), st.integers(0, 2), machines),
    max_size=40,
)


@given(ops)
def test_the_watched_sites_are_always_the_sites_of_subscribed_machines(
    steps: list[tuple[str, int, str]],
) -> None:
    told: list[frozenset[str]] = []
    fanout = Fanout(on_sites=told.append)
    subs = [Subscriber() for _ in range(3)]
    for sub in subs:
        fanout.add(sub)
    for op, who, machine in steps:
        before, calls = fanout.sites, len(told)
        if op == "subscribe":
            fanout.subscribe(subs[who], machine, None)
        elif op == "unsubscribe":
            fanout.unsubscribe(subs[who], machine)
        else:
            fanout.remove(subs[who])
            fanout.add(subs[who])
        expected = frozenset(m.split("/")[0] for s in subs for m in s.machines)
        assert fanout.sites == expected
        # Told exactly when the set changed (a removal may change it once per site it held).
        if expected != before:
            assert told[-1] == expected
        else:
            assert len(told) == calls
    assert all(x != y for x, y in itertools.pairwise(told))
