"""Pure parts of the buffer: batching, seq ranges, downsampling, codec."""

from hypothesis import given
from hypothesis import strategies as st

import wire
from edge_agent.buffer import Batcher, Reading, SeqAllocator, downsample
from edge_agent.buffer.downsample import AVG_SUFFIX
from edge_agent.buffer.readings import assemble, decode_body, encode_body, wire_encoder


def test_batcher_flushes_on_size_and_delay() -> None:
    b = Batcher(max_batch=3, max_delay=0.1)
    rs = [Reading("t", i, float(i)) for i in range(7)]
    assert b.add("m1", rs, now=0.0) == [rs[0:3], rs[3:6]]
    assert b.due(0.05) == []
    assert b.next_deadline() == 0.1
    assert b.due(0.1) == [("m1", rs[6:])]
    assert b.drain() == []


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


def test_chunk_bodies_assemble_into_a_valid_wire_batch() -> None:
    now = 1_763_900_000_000
    enc = wire_encoder("line3-pc")
    a = [Reading("a", now + 1, 1.5), Reading("b", now + 2, True, "bad")]
    b = [Reading("c", now + 3, "x", "uncertain"), Reading("d", now + 4, -7)]
    bodies = [encode_body(enc, "m1", a), encode_body(enc, "m1", b)]
    assert decode_body(bodies[0]) == a
    payload = assemble(enc, "m1", 42, bodies)
    batch = wire.parse_telemetry("ms/v1/s/l/m1/telemetry", payload, now)
    assert (batch.src, batch.seq) == ("line3-pc", 42)
    assert [(r.tag, r.ts, r.v, r.q) for r in batch.readings] == [tuple(r) for r in a + b]
    assert payload == wire.encode_telemetry("line3-pc", 42, a + b)
