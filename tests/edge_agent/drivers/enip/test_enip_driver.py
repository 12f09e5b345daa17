"""The EtherNet/IP driver against a real CIP server (cpppo's Logix simulator): every type,
array elements, a missing tag, writes, and a server that goes away and comes back."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_agent.drivers.enip.driver import EnipDriver, EnipEndpoint, EnipPoint
from edge_agent.errors import WriteRefused
from millstream_common.backoff import Backoff
from tests.edge_agent.drivers.enip.enip_harness import enip_server

FAST = Backoff(initial_s=0.05, cap_s=0.2)
TAGS = {
    "Speed": "REAL", "Count": "DINT", "Small": "INT", "Tiny": "SINT", "Running": "BOOL",
    "Data": "DINT[10]", "Name": "SSTRING", "Big": "LREAL", "U": "UDINT",
}  # fmt: skip


async def test_every_type_decodes_and_a_missing_tag_is_bad() -> None:
    points = [
        EnipPoint("speed", "Speed", "real"),
        EnipPoint("count", "Count"),
        EnipPoint("small", "Small", "int", scale=0.1),
        EnipPoint("tiny", "Tiny", "sint"),
        EnipPoint("running", "Running", "bool"),
        EnipPoint("third", "Data[3]", "dint"),
        EnipPoint("name", "Name", "string"),
        EnipPoint("big", "Big", "lreal"),
        EnipPoint("u", "U", "udint"),
        EnipPoint("ghost", "Nope"),
        EnipPoint("typed", "Count", "real"),  # the controller's DINT is not the REAL asked for
    ]
    with enip_server(TAGS) as server:
        server.set(Speed=12.5, Count=-123456, Small=-7, Tiny=5, Running=True, Data_3=42,
                   Name="hello", Big=3.25, U=4_000_000_000)  # fmt: skip
        async with EnipDriver("plc", EnipEndpoint("127.0.0.1", server.port), points) as driver:
            samples = {s.tag: s for s in await driver.read()}
    values = {tag: s.value for tag, s in samples.items() if s.quality == "good"}
    assert values == {
        "speed": 12.5, "count": -123456, "small": pytest.approx(-0.7), "tiny": 5,
        "running": True, "third": 42, "name": "hello", "big": 3.25, "u": 4_000_000_000,
    }  # fmt: skip
    assert (samples["ghost"].quality, samples["typed"].quality) == ("bad", "bad")
    assert driver.counters["requests"] == 2  # ten tags in one multi-request, the string alone


async def test_writes_land_in_the_controller_and_are_read_back() -> None:
    points = [
        EnipPoint("speed", "Speed", "real", writable=True, min=0, max=100),
        EnipPoint("small", "Small", "int", scale=0.1, writable=True),
        EnipPoint("running", "Running", "bool", writable=True),
        EnipPoint("count", "Count"),
    ]
    with enip_server(TAGS) as server:
        async with EnipDriver("plc", EnipEndpoint("127.0.0.1", server.port), points) as driver:
            assert await driver.write("speed", 55.5) == (0.0, 55.5)
            assert await driver.write("small", 21.5) == (0, pytest.approx(21.5))
            assert await driver.write("running", True) == (False, True)
            for tag, value, words in (
                ("speed", 150, "above speed's max 100"),
                ("count", 1, "not writable"),
                ("small", 5000, "50000 does not fit INT"),
            ):
                with pytest.raises(WriteRefused) as info:
                    await driver.write(tag, value)
                assert words in str(info.value)


async def test_a_controller_that_stops_is_offline_and_back_when_it_returns() -> None:
    points = [EnipPoint("speed", "Speed", "real", poll_ms=100)]
    with enip_server(TAGS) as server:
        server.set(Speed=12.5)
        endpoint = EnipEndpoint("127.0.0.1", server.port, timeout_ms=500)
        driver = EnipDriver("plc", endpoint, points, backoff=FAST)
        async with driver:
            batches = driver.batches()
            assert (await anext(batches))[0].value == 12.5
            server.stop()
            deadline = time.monotonic() + 15
            while driver.health.state() != "offline":
                assert time.monotonic() < deadline, "never offline"
                await asyncio.sleep(0.1)
            assert "127.0.0.1" in (driver.health.why() or "")
            server.start()
            deadline = time.monotonic() + 15
            while driver.health.state() != "online":
                assert time.monotonic() < deadline, "never back"
                await asyncio.sleep(0.1)
            await driver.close()
            rest = [b async for b in batches]
    assert rest, "readings after the controller came back"
