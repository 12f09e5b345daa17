"""Codec: every type × order round-trips, known byte layouts, strings, bits, scaling."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.drivers.modbus.codec import (
    ORDERS,
    all_orders,
    decode_point,
    decode_registers,
    encode_point,
    encode_value,
    implausibility,
    register_count,
    set_bit,
)
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.errors import DecodeError

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
orders = st.sampled_from(ORDERS)


@pytest.mark.parametrize("type_", sorted(INT_RANGES))
@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(data=st.data(), order=orders)
def test_integers_round_trip(type_: str, data: st.DataObject, order: str) -> None:
    low, high = INT_RANGES[type_]
    value = data.draw(st.integers(low, high))
    regs = encode_value(value, type_, order)  # type: ignore[arg-type]
    assert len(regs) == register_count(type_)  # type: ignore[arg-type]
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_registers(regs, type_, order) == value  # type: ignore[arg-type]


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(value=st.floats(width=32, allow_nan=False), order=orders)
def test_float32_round_trips(value: float, order: str) -> None:
    assert decode_registers(encode_value(value, "float32", order), "float32", order) == value  # type: ignore[arg-type]


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(value=st.floats(allow_nan=False), order=orders)
def test_float64_round_trips(value: float, order: str) -> None:
    assert decode_registers(encode_value(value, "float64", order), "float64", order) == value  # type: ignore[arg-type]


@pytest.mark.parametrize("type_", ["float32", "float64"])
@pytest.mark.parametrize("order", ORDERS)
def test_nan_round_trips_as_nan(type_: str, order: str) -> None:
    decoded = decode_registers(encode_value(math.nan, type_, order), type_, order)  # type: ignore[arg-type]
    assert isinstance(decoded, float)
    assert math.isnan(decoded)


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(
    text=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
    length=st.integers(10, 20),
    order=orders,
)
def test_strings_round_trip(text: str, length: int, order: str) -> None:
    regs = encode_value(text, "string", order, length)  # type: ignore[arg-type]
    assert len(regs) == length
    assert decode_registers(regs, "string", order) == text  # type: ignore[arg-type]


@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(value=st.booleans(), order=orders)
def test_bool_round_trips(value: bool, order: str) -> None:
    assert decode_registers(encode_value(value, "bool", order), "bool", order) is value  # type: ignore[arg-type]


# The float 1.0 is 0x3F800000: bytes A=3F B=80 C=00 D=00.
@pytest.mark.parametrize(
    ("order", "regs"),
    [
        ("ABCD", [0x3F80, 0x0000]),
        ("CDAB", [0x0000, 0x3F80]),
        ("BADC", [0x803F, 0x0000]),
        ("DCBA", [0x0000, 0x803F]),
    ],
)
def test_float32_byte_layout_per_order(order: str, regs: list[int]) -> None:
    assert encode_value(1.0, "float32", order) == regs  # type: ignore[arg-type]
    assert decode_registers(regs, "float32", order) == 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order", "regs"),
    [
        ("ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
        ("CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
        ("BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
        ("DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
def test_64_bit_layout_per_order(order: str, regs: list[int]) -> None:
    assert encode_value(0x0102030405060708, "uint64", order) == regs  # type: ignore[arg-type]
    assert struct.unpack("<Q", struct.pack("<Q", 0x0102030405060708))[0] == 0x0102030405060708


def test_string_strips_trailing_nuls_and_spaces() -> None:
    regs = [0x4142, 0x4320, 0x2000, 0x0000]  # "ABC  \0\0\0"
    assert decode_registers(regs, "string") == "ABC"
    assert decode_registers([0x4241, 0x2043], "string", "BADC") == "ABC"


def test_bit_extraction_from_register() -> None:
    reg = set_bit(set_bit(0, 3, True), 15, True)
    assert reg == 0x8008
    assert decode_registers([reg], "bool", bit=3) is True
    assert decode_registers([reg], "bool", bit=15) is True
    assert decode_registers([reg], "bool", bit=4) is False
    assert set_bit(reg, 3, False) == 0x8000


def test_scale_and_offset_apply_to_numbers_only() -> None:
    point = ModbusPoint("t", "holding", 0, "int16", scale=0.1, offset=-40.0, unit="°C")
    regs = encode_point(21.5, point)
    assert regs == [615]
    assert decode_point(regs, point) == pytest.approx(21.5)
    plain = ModbusPoint("n", "holding", 0, "uint16")
    assert decode_point([7], plain) == 7
    assert isinstance(decode_point([7], plain), int)


def test_wrong_register_count_is_a_decode_error() -> None:
    point = ModbusPoint("f", "holding", 0, "float32")
    with pytest.raises(DecodeError, match="f: float32 needs 2 registers"):
        decode_point([1], point)


def test_encode_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside int16"):
        encode_value(40000, "int16")
    with pytest.raises(ValueError, match="needs more than"):
        encode_value("too long", "string", length=2)


def test_all_orders_finds_the_plausible_one() -> None:
    regs = encode_value(230.5, "float32", "CDAB")
    values = all_orders(regs, "float32")
    assert values["CDAB"] == 230.5
    plausible = [o for o, v in values.items() if implausibility(v, "float32") is None]
    assert "CDAB" in plausible
    assert implausibility(math.nan) == "NaN"
    assert implausibility(math.inf) == "inf"
    assert implausibility(2e12) == "huge"
    assert implausibility(1e-40, "float32") == "denormal"
    assert implausibility(230.5) is None
    assert implausibility(True) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": "coil", "type": "uint16"}, "holds bits"),
        ({"type": "string"}, "needs length"),
        ({"type": "string", "length": 126}, "needs length"),
        ({"type": "uint16", "bit": 3}, "for type bool only"),
        ({"type": "bool", "bit": 16}, "for type bool only"),
        ({"table": "coil", "type": "bool", "bit": 1}, "for type bool only"),
        ({"type": "uint16", "address": 65536}, "outside 0..65535"),
        ({"type": "uint16", "poll_ms": 0}, "poll_ms"),
    ],
)
def test_point_rejects_what_cannot_be_read(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"name": "p", "table": "holding", "address": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ModbusPoint(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0.1, 0.01, 0.5, 2.0, 0.3, 1.0])
@settings(deadline=None)  # a loaded CI machine must not turn into a flaky test
@given(raw=st.integers(-(2**15), 2**15 - 1))
def test_unscale_inverts_scale_for_integers(scale: float, raw: int) -> None:
    point = ModbusPoint("p", "holding", 0, "int16", scale=scale, offset=-40.0)
    assert (
        decode_registers(
            encode_point(decode_point(encode_value(raw, "int16"), point), point), "int16"
        )
        == raw
    )
