"""Receipt tracker (pure): at most one receipt per src per interval, nothing lost in between."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.receipts import ReceiptTracker


def test_first_receipt_is_immediate_then_throttled_per_src() -> None:
    t = ReceiptTracker(interval_ms=200)
    t.add("a", 1, "d1")
    t.add("b", 7, "d7")
    assert t.due(1000) == [("a", [(1, "d1")]), ("b", [(7, "d7")])]
    t.add("a", 2, "d2")
    t.add("a", 3, "d3")
    assert t.due(1100) == []  # a was told 100 ms ago
    t.add("c", 1, "e1")
    assert t.due(1150) == [("c", [(1, "e1")])]  # other publishers are not held back
    assert t.due(1200) == [("a", [(2, "d2"), (3, "d3")])]
    assert len(t) == 0


def test_two_payloads_for_one_seq_are_both_named() -> None:
    """A forged batch reusing a seq gets its own digest: the publisher can tell which is its own."""
    t = ReceiptTracker(interval_ms=200)
    t.add("a", 5, "forged")
    t.add("a", 5, "real")
    t.add("a", 5, "real")  # a republish of the same bytes
    assert t.due(0) == [("a", [(5, "forged"), (5, "real")])]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50), st.integers(0, 300))))
def test_every_committed_seq_is_receipted_exactly_once_in_time(
    events: list[tuple[str, int, int]],
) -> None:
    t = ReceiptTracker(interval_ms=200)
    now, told, added = 0, {}, {}
    last: dict[str, int] = {}
    for src, seq, step in events:
        t.add(src, seq, f"d{seq}")
        added.setdefault(src, set()).add((seq, f"d{seq}"))
        now += step
        for s, batches in t.due(now):
            assert s not in last or now - last[s] >= 200
            last[s] = now
            told.setdefault(s, set()).update(batches)
    for s, batches in t.due(now + 10_000):
        told.setdefault(s, set()).update(batches)
    assert told == added
