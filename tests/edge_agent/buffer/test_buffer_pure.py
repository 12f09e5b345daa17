"""Pure parts of the buffer: batching, seq ranges, downsampling, codec."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.buffer import Batcher, Reading, SeqAllocator, downsample, merge_ranges, to_ranges
from edge_agent.buffer.downsample import AVG_SUFFIX
from edge_agent.buffer.readings import decode_readings, encode_readings


def test_batcher_flushes_on_size_and_delay() -> None:
    b = Batcher(max_batch=3, max_delay=0.1)
    rs = [Reading("t", i, float(i)) for i in range(7)]
    assert b.add("m1", rs, now=0.0) == [rs[0:3], rs[3:6]]
    assert b.due(0.05) == []
    assert b.next_deadline() == 0.1
    assert b.due(0.1) == [("m1", rs[6:])]
    assert b.drain() == []


@given(st.lists(st.integers(0, 200), max_size=60))
def test_to_ranges_covers_exactly(seqs: list[int]) -> None:
    ranges = to_ranges(seqs)
    covered = {s for a, b in ranges for s in range(a, b + 1)}
    assert covered == set(seqs)
    assert all(b2[0] > b1[1] + 1 for b1, b2 in itertools.pairwise(ranges))


def test_merge_ranges_adjacent() -> None:
    assert merge_ranges([(5, 6), (1, 2), (3, 4), (10, 10)]) == [(1, 6), (10, 10)]


def test_seq_allocator_persists_ceiling_before_use() -> None:
    alloc = SeqAllocator(100, block=3)
    assert alloc.take() == (100, 103)
    assert alloc.take() == (101, None)
    assert alloc.take() == (102, None)
    assert alloc.take() == (103, 106)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 300_000), st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=200,
    )
)
def test_downsample_keeps_extremes_and_last(points: list[tuple[str, int, float]]) -> None:
    readings = list({(t, ts): Reading(t, ts, v) for t, ts, v in points}.values())
    out = downsample(readings)
    assert len(out) <= len(readings) + len(readings) // 4 + 1
    raw = {(r.tag, r.ts): r for r in readings}
    for r in out:
        if r.tag.endswith(AVG_SUFFIX):
            assert r.q == "uncertain"
        else:
            assert raw[(r.tag, r.ts)] == r  # real readings keep their identity and value
    for tag in ("a", "b"):
        series = [r for r in readings if r.tag == tag]
        if series:
            kept = {(r.tag, r.ts) for r in out}
            assert (tag, max(r.ts for r in series)) in kept
            assert min(r.v for r in series) in {r.v for r in out if r.tag == tag}


def test_codec_roundtrip() -> None:
    rs = [Reading("a", 1, 1.5), Reading("b", 2, True, "bad"), Reading("c", 3, "x", "uncertain")]
    assert decode_readings(encode_readings(rs)) == rs
