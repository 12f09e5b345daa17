"""Read planner: coverage, protocol limits, contiguous blocks, learning from rejected spans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.drivers.modbus.codec import register_count
from edge_agent.drivers.modbus.planner import (
    MAX_BITS,
    MAX_REGISTERS,
    Learned,
    ReadRequest,
    plan_reads,
    point_span,
    split_request,
)
from edge_agent.drivers.modbus.points import ModbusPoint

REGISTER_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


@st.composite
def points_strategy(draw: st.DrawFn) -> list[ModbusPoint]:
    count = draw(st.integers(1, 60))
    out = []
    for i in range(count):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        poll_ms = draw(st.sampled_from([100, 1000]))
        if table in ("coil", "discrete"):
            out.append(
                ModbusPoint(f"p{i}", table, draw(st.integers(0, 6000)), "bool", poll_ms=poll_ms)
            )
            continue
        type_ = draw(st.sampled_from([*REGISTER_TYPES, "string", "bool"]))
        length = draw(st.integers(1, 125)) if type_ == "string" else None
        address = draw(st.integers(0, 65536 - register_count(type_, length)))  # type: ignore[arg-type]
        out.append(ModbusPoint(f"p{i}", table, address, type_, length=length, poll_ms=poll_ms))  # type: ignore[arg-type]
    return out


def _check(requests: list[ReadRequest], points: list[ModbusPoint]) -> None:
    covered = [p.name for r in requests for p in r.points]
    assert sorted(covered) == sorted(p.name for p in points)
    for r in requests:
        limit = MAX_BITS if r.table in ("coil", "discrete") else MAX_REGISTERS
        assert 1 <= r.count <= limit
        for p, cached in zip(r.points, r.slices, strict=True):
            assert cached == r.slice_for(p)
            assert p.table == r.table
            assert p.poll_ms == r.poll_ms
            start, stop = r.slice_for(p)
            assert 0 <= start < stop <= r.count


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(points=points_strategy(), max_gap=st.integers(0, 20))
def test_plan_covers_every_point_within_limits(points: list[ModbusPoint], max_gap: int) -> None:
    _check(plan_reads(points, max_gap=max_gap), points)


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(
    start=st.integers(0, 60000),
    types=st.lists(st.sampled_from(REGISTER_TYPES), min_size=1, max_size=40),
)
def test_contiguous_block_is_one_request(start: int, types: list[str]) -> None:
    points, address = [], start
    for i, type_ in enumerate(types):
        points.append(ModbusPoint(f"p{i}", "holding", address, type_))  # type: ignore[arg-type]
        address += register_count(type_)  # type: ignore[arg-type]
    total = address - start
    requests = plan_reads(points, max_gap=0)
    if total <= MAX_REGISTERS:
        assert len(requests) == 1
        assert (requests[0].address, requests[0].count) == (start, total)
    else:
        # Fewest requests: a greedy fill can waste at most one 4-register point per request.
        assert len(requests) <= -(-total // (MAX_REGISTERS - 3))


def test_gaps_are_bridged_up_to_max_gap() -> None:
    a = ModbusPoint("a", "holding", 0, "uint16")
    b = ModbusPoint("b", "holding", 9, "uint16")  # gap of 8
    c = ModbusPoint("c", "holding", 19, "uint16")  # gap of 9
    requests = plan_reads([a, b, c], max_gap=8)
    assert [(r.address, r.count) for r in requests] == [(0, 10), (19, 1)]


def test_coils_use_the_bit_limit() -> None:
    points = [ModbusPoint(f"c{i}", "coil", i, "bool") for i in range(2500)]
    requests = plan_reads(points)
    assert [(r.address, r.count) for r in requests] == [(0, 2000), (2000, 500)]


def test_tables_and_intervals_are_separate_requests() -> None:
    points = [
        ModbusPoint("h", "holding", 0, "uint16"),
        ModbusPoint("i", "input", 1, "uint16"),
        ModbusPoint("fast", "holding", 1, "uint16", poll_ms=100),
    ]
    assert len(plan_reads(points)) == 3


def test_learned_bad_point_is_read_alone_and_never_spanned() -> None:
    points = [ModbusPoint(f"p{i}", "holding", i * 2, "float32") for i in range(10)]
    learned = Learned()
    learned.mark_bad(points[4])
    requests = plan_reads(points, learned=learned)
    _check(requests, points)
    bad = points[4]
    for r in requests:
        if r.points != (bad,):
            assert r.end <= bad.address or r.address >= bad.address + point_span(bad)
    assert [r.points for r in requests].count((bad,)) == 1
    learned.mark_good(bad)
    assert len(plan_reads(points, learned=learned)) == 1


def test_learned_cut_stops_bridging_a_rejected_gap() -> None:
    a = ModbusPoint("a", "holding", 0, "uint16")
    b = ModbusPoint("b", "holding", 5, "uint16")
    learned = Learned()
    learned.cut("holding", 5)
    assert [(r.address, r.count) for r in plan_reads([a, b], learned=learned)] == [(0, 1), (5, 1)]


def test_split_divides_at_the_widest_gap() -> None:
    points = tuple(
        ModbusPoint(n, "holding", addr, "uint16")
        for n, addr in [("a", 0), ("b", 1), ("c", 7), ("d", 8)]
    )
    request = ReadRequest("holding", 0, 9, 1000, points)
    left, right = split_request(request)
    assert [p.name for p in left.points] == ["a", "b"]
    assert (right.address, right.count) == (7, 2)
    with pytest.raises(ValueError, match="cannot be split"):
        split_request(ReadRequest("holding", 0, 1, 1000, points[:1]))


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(points=points_strategy())
def test_split_keeps_every_point(points: list[ModbusPoint]) -> None:
    for request in plan_reads(points):
        if len(request.points) > 1:
            left, right = split_request(request)
            assert sorted(p.name for p in left.points + right.points) == sorted(
                p.name for p in request.points
            )
            assert left.count <= request.count
            assert right.count <= request.count
