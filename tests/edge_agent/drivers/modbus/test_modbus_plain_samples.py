"""A poll's fast path (`plain_samples`, for requests whose registers are their values) makes
exactly the samples `sample_of` makes point by point, and refuses every request it cannot."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.drivers.base import Sample
from edge_agent.drivers.modbus.driver import plain_samples, sample_of
from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.drivers.modbus.points import ModbusPoint, Table


@st.composite
def registers_points(draw: st.DrawFn) -> list[ModbusPoint]:
    """Mostly plain uint16 tags (gaps between them too); sometimes one that is not plain."""
    out = []
    address = draw(st.integers(0, 100))
    for i in range(draw(st.integers(1, 150))):
        address += draw(st.sampled_from([1, 1, 1, 2, 5]))
        kind = draw(
            st.sampled_from(["plain"] * 12 + ["int16", "scaled", "swapped", "bit", "input", "cdab"])
        )
        if kind == "int16":
            point = ModbusPoint(f"t{i}", "holding", address, "int16")
        elif kind == "scaled":
            point = ModbusPoint(f"t{i}", "holding", address, "uint16", scale=0.1)
        elif kind == "swapped":
            point = ModbusPoint(f"t{i}", "holding", address, "uint16", order="BADC")
        elif kind == "bit":
            point = ModbusPoint(f"t{i}", "holding", address, "bool", bit=3)
        elif kind == "cdab":  # a 16-bit value honours only the byte swap
            point = ModbusPoint(f"t{i}", "holding", address, "uint16", order="CDAB")
        else:
            table: Table = "input" if kind == "input" else "holding"
            point = ModbusPoint(f"t{i}", table, address, "uint16")
        out.append(point)
    return out


@settings(max_examples=200, deadline=None)
@given(points=registers_points(), data=st.data())
@example(points=[ModbusPoint("a", "holding", 0, "uint16")], data=None)
def test_plain_samples_are_what_sample_of_makes(
    points: list[ModbusPoint], data: st.DataObject | None
) -> None:
    for request in plan_reads(points):
        regs = (
            [7] * request.count
            if data is None
            else data.draw(
                st.lists(st.integers(0, 0xFFFF), min_size=request.count, max_size=request.count)
            )
        )
        expected = [
            sample_of(point, regs[start:stop], 1_700_000_000_000)
            for point, (start, stop) in zip(request.points, request.slices, strict=True)
        ]
        out: list[Sample] = []
        if plain_samples(request, regs, 1_700_000_000_000, out):
            assert request.plain is not None
            assert out == expected
            assert all(type(s) is Sample for s in out)
        else:
            assert out == []
            # Only a request with a point that is not its register's value goes the long way.
            assert request.plain is None
            assert any(
                p.type != "uint16"
                or p.scale != 1.0
                or p.order in ("BADC", "DCBA")
                or p.bit is not None
                for p in request.points
            )


def test_registers_out_of_range_take_the_long_way() -> None:
    request = plan_reads([ModbusPoint("a", "holding", 0, "uint16")])[0]
    out: list[Sample] = []
    assert not plain_samples(request, [0x10000], 1, out)
    assert out == []
    assert sample_of(request.points[0], [0x10000], 1).quality == "bad"
