"""The S7 driver against a real S7 server (python-snap7's): every type, coalesced reads, and a
server that goes away and comes back."""

from __future__ import annotations

import asyncio
import math
import struct
import time

import pytest

from edge_agent.drivers.s7.address import AddressError, parse_address
from edge_agent.drivers.s7.driver import Block, S7Driver, S7Endpoint, S7Point, pack_requests
from edge_agent.errors import WriteRefused
from millstream_common.backoff import Backoff
from tests.edge_agent.drivers.s7.s7_harness import s7_server

FAST = Backoff(initial_s=0.05, cap_s=0.2)


def _point(name: str, address: str, type_: str, **kw: object) -> S7Point:
    return S7Point(name, parse_address(address), type_, **kw)  # type: ignore[arg-type]


def _db10() -> bytearray:
    data = bytearray(64)
    struct.pack_into(">f", data, 0, 12.5)
    struct.pack_into(">i", data, 4, -123456)
    struct.pack_into(">h", data, 8, -7)
    struct.pack_into(">H", data, 10, 0xBEEF)
    struct.pack_into(">I", data, 12, 0xDEADBEEF)
    struct.pack_into(">H", data, 16, 65000)
    struct.pack_into(">I", data, 18, 4_000_000_000)
    struct.pack_into(">d", data, 22, math.pi)
    data[30] = 0x7F
    data[31] = 0b0000_1000  # bit 3
    data[32:39] = bytes([20, 5]) + b"hello"
    return data


async def test_every_type_decodes_to_the_plc_value() -> None:
    merker, inputs, outputs = bytearray(32), bytearray(4), bytearray(4)
    struct.pack_into(">h", merker, 20, 1234)
    inputs[0] = 0b10  # I0.1
    outputs[0] = 0b1  # Q0.0
    points = [
        _point("real", "DB10.DBD0", "real"),
        _point("dint", "DB10.DBD4", "dint"),
        _point("int", "DB10.DBW8", "int", scale=0.1),
        _point("word", "DB10.DBW10", "word"),
        _point("dword", "DB10.DBD12", "dword"),
        _point("uint", "DB10.DBW16", "uint"),
        _point("udint", "DB10.DBD18", "udint"),
        _point("lreal", "DB10.DBB22", "lreal"),
        _point("byte", "DB10.DBB30", "byte"),
        _point("bit", "DB10.DBX31.3", "bool"),
        _point("off", "DB10.DBX31.2", "bool"),
        _point("text", "DB10.DBB32", "string", length=20),
        _point("mw", "%MW20", "int"),
        _point("in", "I0.1", "bool"),
        _point("out", "A0.0", "bool"),
    ]
    with s7_server({10: _db10()}, merker=merker, inputs=inputs, outputs=outputs) as (_s, port):
        async with S7Driver("plc", S7Endpoint("127.0.0.1", port), points) as driver:
            values = {s.tag: s.value for s in await driver.read()}
    assert values == {
        "real": 12.5, "dint": -123456, "int": pytest.approx(-0.7), "word": 0xBEEF,
        "dword": 0xDEADBEEF, "uint": 65000, "udint": 4_000_000_000, "lreal": math.pi,
        "byte": 0x7F, "bit": True, "off": False, "text": "hello", "mw": 1234, "in": True,
        "out": True,
    }  # fmt: skip
    # One data block, the merker, the inputs and the outputs: four ranges, read together in
    # one multi-variable request, not fifteen reads.
    assert len(driver.requests) == 4
    assert driver.counters["requests"] == 1


async def test_a_thousand_tags_are_read_in_pdu_sized_ranges() -> None:
    data = bytearray(4000)
    for i in range(1000):
        struct.pack_into(">f", data, 4 * i, float(i))
    points = [_point(f"t{i}", f"DB1.DBD{4 * i}", "real") for i in range(1000)]
    with s7_server({1: data}) as (_server, port):
        async with S7Driver("big", S7Endpoint("127.0.0.1", port), points) as driver:
            samples = await driver.read()
            per_poll = driver.counters["requests"]
    assert [s.value for s in samples] == [float(i) for i in range(1000)]
    # 4,000 bytes in ranges of at most PDU − 18 bytes (the PDU the server negotiated).
    assert driver.pdu_length >= 240
    assert per_poll == len(driver.requests) == math.ceil(4000 / ((driver.pdu_length - 18) // 4 * 4))


async def test_a_server_that_stops_is_offline_and_back_when_it_returns() -> None:
    points = [_point("real", "DB10.DBD0", "real", poll_ms=50)]
    with s7_server({10: _db10()}) as (server, port):
        driver = S7Driver(
            "plc", S7Endpoint("127.0.0.1", port, timeout_ms=300), points, backoff=FAST
        )
        async with driver:
            batches = driver.batches()
            assert (await anext(batches))[0].value == 12.5
            server.stop()
            deadline = time.monotonic() + 10
            while driver.health.state() != "offline":
                assert time.monotonic() < deadline, "never offline"
                await asyncio.sleep(0.05)
            assert "127.0.0.1" in (driver.health.why() or "")
            server.start_to("127.0.0.1", port)
            deadline = time.monotonic() + 10
            while driver.health.state() != "online":
                assert time.monotonic() < deadline, "never back"
                await asyncio.sleep(0.05)
            await driver.close()
            rest = [b async for b in batches]
    assert rest, "readings after the server came back"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("DB10.D4", "write DB10.DBD4"),
        ("DB10.DBX0", "write DB10.DBX0.0"),
        ("M0.9", "bit numbers run 0 to 7"),
        ("40001", "a 4xxxx number is Modbus"),
        ("DB0.DBW0", "DB numbers run 1–65535"),
        ("XYZ", "write it as in TIA Portal"),
    ],
)
def test_a_wrong_address_names_the_right_form(text: str, hint: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert hint in info.value.hint


async def test_writes_land_in_the_plc_and_are_read_back() -> None:
    db = _db10()
    points = [
        _point("speed", "DB10.DBD0", "real", writable=True, min=0.0, max=100.0),
        _point("count", "DB10.DBD4", "dint", writable=True),
        _point("temp", "DB10.DBW8", "int", scale=0.1, writable=True),
        _point("bit", "DB10.DBX31.5", "bool", writable=True),
        _point("text", "DB10.DBB32", "string", length=20, writable=True),
        _point("word", "DB10.DBW10", "word"),
    ]
    with s7_server({10: db}) as (_server, port):
        async with S7Driver("plc", S7Endpoint("127.0.0.1", port), points) as driver:
            assert await driver.write("speed", 55.5) == (12.5, 55.5)
            assert await driver.write("count", 7) == (-123456, 7)
            before, after = await driver.write("temp", 21.5)
            assert (before, after) == (pytest.approx(-0.7), pytest.approx(21.5))
            assert await driver.write("bit", True) == (False, True)
            assert await driver.write("text", "recipe 4") == ("hello", "recipe 4")
            for tag, value, words in (
                ("speed", 150, "above speed's max 100"),
                ("word", 1, "not writable"),
                ("temp", 5000, "50000 does not fit INT (-32768 … 32767)"),
                ("nope", 1, "no tag 'nope'"),
                ("text", "x" * 21, "do not fit a String[20]"),
            ):
                with pytest.raises(WriteRefused) as info:
                    await driver.write(tag, value)
                assert words in str(info.value)
    # The PLC's own memory holds them, big-endian, the other bits of the byte untouched.
    assert struct.unpack_from(">f", db, 0)[0] == 55.5
    assert struct.unpack_from(">i", db, 4)[0] == 7
    assert struct.unpack_from(">h", db, 8)[0] == 215
    assert db[31] == 0b0010_1000
    assert db[32:42] == bytes([20, 8]) + b"recipe 4"


def test_requests_are_packed_within_the_pdu_and_twenty_items() -> None:
    def blocks(*sizes: int) -> list[Block]:
        return [Block("DB", 1, 100 * i, size) for i, size in enumerate(sizes)]

    # 25 two-byte ranges: twenty to a request, however small they are.
    assert [len(p) for p in pack_requests(blocks(*[2] * 25), 960)] == [20, 5]
    # Answers of 4 + size (+ a fill byte to even) after 14 bytes of headers: 14 + 3 × 156 = 482.
    assert [len(p) for p in pack_requests(blocks(151, 151, 151), 480)] == [2, 1]
    # A range that fills a PDU alone goes alone.
    assert [len(p) for p in pack_requests(blocks(2, 462, 2), 480)] == [1, 1, 1]
