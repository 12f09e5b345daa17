"""Receipt tracker (pure): at most one receipt per src per interval, nothing lost in between."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.receipts import ReceiptTracker


def test_first_receipt_is_immediate_then_throttled_per_src() -> None:
    t = ReceiptTracker(interval_ms=200)
    t.add("a", 1)
    t.add("b", 7)
    assert t.due(1000) == [("a", [1]), ("b", [7])]
    t.add("a", 2)
    t.add("a", 3)
    assert t.due(1100) == []  # a was told 100 ms ago
    t.add("c", 1)
    assert t.due(1150) == [("c", [1])]  # other publishers are not held back
    assert t.due(1200) == [("a", [2, 3])]
    assert len(t) == 0


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50), st.integers(0, 300))))
def test_every_committed_seq_is_receipted_exactly_once_in_time(
    events: list[tuple[str, int, int]],
) -> None:
    t = ReceiptTracker(interval_ms=200)
    now, told, added = 0, {}, {}
    last: dict[str, int] = {}
    for src, seq, step in events:
        t.add(src, seq)
        added.setdefault(src, set()).add(seq)
        now += step
        for s, seqs in t.due(now):
            assert s not in last or now - last[s] >= 200
            last[s] = now
            told.setdefault(s, set()).update(seqs)
    for s, seqs in t.due(now + 10_000):
        told.setdefault(s, set()).update(seqs)
    assert told == added
