"""The driver against a real pymodbus TCP server: decoding, learning, faults, recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

import pytest
from modbus_harness import FlakyProxy, Gate, catalog, free_port, sim_device, tcp_server

from edge_agent.drivers.base import Driver, Sample, SubscribingDriver
from edge_agent.drivers.modbus.bus import BusPool
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, TcpLink
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.polling import QUEUE_BATCHES
from edge_agent.errors import DeviceUnavailable
from millstream_common.backoff import Backoff

FAST = Backoff(initial_s=0.02, cap_s=0.2)


def endpoint(port: int, unit: int = 1, timeout_ms: int = 500) -> ModbusEndpoint:
    return ModbusEndpoint(TcpLink("127.0.0.1", port), unit=unit, timeout_ms=timeout_ms)


async def test_every_type_and_order_decodes() -> None:
    cases, tables = catalog()
    device = sim_device(
        1,
        holding=tables["holding"],
        input=tables["input"],
        coils=tables["coil"],
        discrete=tables["discrete"],
    )
    async with tcp_server([device]) as port:
        driver = ModbusDriver("plc", endpoint(port), [p for p, _ in cases])
        assert isinstance(driver, Driver)
        assert isinstance(driver, SubscribingDriver)
        async with driver:
            samples = {s.tag: s for s in await driver.read()}
    for point, expected in cases:
        sample = samples[point.name]
        assert sample.quality == "good", point
        if isinstance(expected, float):
            assert sample.value == pytest.approx(expected), point
        else:
            assert sample.value == expected, point
            assert type(sample.value) is type(expected), point
    # 32 numeric points in 80 contiguous registers: one request, not 32.
    holding = [r for r in driver.requests if r.table == "holding" and r.address == 0]
    assert len(holding) == 1


async def test_rejected_tag_is_bad_and_never_read_across_again() -> None:
    # Register 4 is missing: tag "hole" at 4 is refused, its neighbours are fine.
    regs = {a: 100 + a for a in range(10) if a != 4}
    points = [ModbusPoint(f"r{a}", "holding", a, "uint16") for a in range(10) if a != 4]
    points.append(ModbusPoint("hole", "holding", 4, "uint16"))
    async with (
        tcp_server([sim_device(1, holding=regs)]) as port,
        ModbusDriver("plc", endpoint(port), points) as driver,
    ):
        assert len(driver.requests) == 1
        first = {s.tag: s for s in await driver.read()}
        plan = driver.requests
        second = {s.tag: s for s in await driver.read()}
        rejected_after_learning = driver.counters["rejected"]
        third = {s.tag: s for s in await driver.read()}
    for samples in (first, second, third):
        assert samples["hole"].quality == "bad"
        assert samples["hole"].value is None
        assert all(samples[f"r{a}"].value == 100 + a for a in range(10) if a != 4)
        assert all(samples[f"r{a}"].quality == "good" for a in range(10) if a != 4)
    assert driver.learned.bad == {"hole"}
    # Learned plan: the bad tag alone, and nothing spans register 4.
    assert [r.points for r in plan].count((points[-1],)) == 1
    assert all(r.end <= 4 or r.address >= 5 for r in plan if r.points != (points[-1],))
    # After learning, only the lone read of the bad tag is refused each poll.
    assert driver.counters["rejected"] == rejected_after_learning + 1


async def test_rejected_gap_is_cut_and_both_sides_flow() -> None:
    regs = {0: 1, 1: 2, 6: 7, 7: 8}  # 2..5 unmapped
    points = [ModbusPoint(f"r{a}", "holding", a, "uint16") for a in regs]
    async with (
        tcp_server([sim_device(1, holding=regs)]) as port,
        ModbusDriver("plc", endpoint(port), points, max_gap=8) as driver,
    ):
        samples = await driver.read()
        again = await driver.read()
    assert {s.tag: s.value for s in samples} == {f"r{a}": v for a, v in regs.items()}
    assert {s.tag: s.value for s in again} == {f"r{a}": v for a, v in regs.items()}
    assert driver.learned.bad == set()
    assert driver.learned.cuts == {("holding", 6)}
    assert [(r.address, r.count) for r in driver.requests] == [(0, 2), (6, 2)]


async def test_unreachable_device_raises_device_unavailable() -> None:
    driver = ModbusDriver("plc", endpoint(free_port()), [ModbusPoint("a", "holding", 0, "uint16")])
    with pytest.raises(DeviceUnavailable) as caught:
        await driver.read()
    await driver.close()
    assert "plc" not in str(caught.value) or caught.value.device == ""


async def test_exception_from_device_maps_to_device_unavailable() -> None:
    # Unit 7 does not exist behind this server: pymodbus answers exception 4, chained as ours.
    async with (
        tcp_server([sim_device(1, holding={0: 1})]) as port,
        ModbusDriver(
            "plc", endpoint(port, unit=7), [ModbusPoint("a", "holding", 0, "uint16")]
        ) as driver,
    ):
        with pytest.raises(DeviceUnavailable, match="exception 4"):
            await driver.read()


async def _collect(driver: ModbusDriver, into: list[Sample]) -> None:
    async for sample in driver.subscribe():
        into.append(sample)


async def _until(predicate: Callable[[], bool]) -> None:
    """Wait for an observable state of the system under test (bounded, never a fixed sleep)."""
    async with asyncio.timeout(15):
        while not predicate():  # noqa: ASYNC110 -- polls state owned by the code under test
            await asyncio.sleep(0.02)


async def test_device_dropping_connection_does_not_stop_the_other() -> None:
    points = [ModbusPoint("a", "holding", 0, "uint16", poll_ms=20)]
    dev_a = sim_device(1, holding={0: 11})
    dev_b = sim_device(1, holding={0: 22})
    got_a: list[Sample] = []
    got_b: list[Sample] = []
    async with tcp_server([dev_b]) as port_b:
        server_a = tcp_server([dev_a])
        port_a = await server_a.__aenter__()
        a = ModbusDriver("a", endpoint(port_a), points, backoff=Backoff(0.02, cap_s=0.2))
        b = ModbusDriver("b", endpoint(port_b), points, backoff=Backoff(0.02, cap_s=0.2))
        tasks = [asyncio.create_task(_collect(a, got_a)), asyncio.create_task(_collect(b, got_b))]
        try:
            await _until(lambda: len(got_a) >= 3 and len(got_b) >= 3)
            await server_a.__aexit__(None, None, None)  # device a drops the connection
            await _until(lambda: a.health.failing_since is not None)
            seen_b = len(got_b)
            await _until(lambda: len(got_b) >= seen_b + 5)  # b keeps flowing while a is down
            seen_a = len(got_a)
            async with tcp_server([sim_device(1, holding={0: 33})], port=port_a):
                await _until(lambda: len(got_a) > seen_a and got_a[-1].value == 33)
                assert a.health.failing_since is None
        finally:
            await a.close()
            await b.close()
            await asyncio.gather(*tasks)
    assert all(s.value == 22 and s.quality == "good" for s in got_b)
    assert a.health.errors >= 1
    assert a.counters["reconnects"] >= 2
    assert b.health.errors == 0


async def test_device_timing_out_does_not_stop_the_other() -> None:
    gate = Gate()
    points = [ModbusPoint("a", "holding", 0, "uint16", poll_ms=20)]
    got_a: list[Sample] = []
    got_b: list[Sample] = []
    async with (
        tcp_server([sim_device(1, holding={0: 1}, action=gate.action)]) as port_a,
        tcp_server([sim_device(1, holding={0: 2})]) as port_b,
    ):
        a = ModbusDriver("a", endpoint(port_a, timeout_ms=200), points, backoff=FAST)
        b = ModbusDriver("b", endpoint(port_b, timeout_ms=200), points, backoff=FAST)
        tasks = [asyncio.create_task(_collect(a, got_a)), asyncio.create_task(_collect(b, got_b))]
        try:
            await _until(lambda: len(got_a) >= 3 and len(got_b) >= 3)
            gate.open.clear()  # device a stops answering
            await _until(lambda: a.health.errors >= 2)
            seen_b = len(got_b)
            await _until(lambda: len(got_b) >= seen_b + 5)
            seen_a = len(got_a)
            gate.open.set()
            await _until(lambda: len(got_a) > seen_a)
        finally:
            gate.open.set()
            await a.close()
            await b.close()
            await asyncio.gather(*tasks)
    assert gate.stalled >= 1
    assert all(s.quality == "good" for s in got_a + got_b)


async def test_rejected_tag_in_poll_loop_keeps_other_tags_flowing() -> None:
    points = [
        ModbusPoint("ok1", "holding", 0, "uint16", poll_ms=20),
        ModbusPoint("missing", "holding", 1, "float32", poll_ms=20),
        ModbusPoint("ok2", "holding", 3, "uint16", poll_ms=20),
    ]
    got: list[Sample] = []
    async with tcp_server([sim_device(1, holding={0: 5, 3: 6})]) as port:
        driver = ModbusDriver("plc", endpoint(port), points, backoff=FAST)
        task = asyncio.create_task(_collect(driver, got))
        try:
            await _until(lambda: Counter(s.tag for s in got)["ok2"] >= 5)
        finally:
            await driver.close()
            await task
    by_tag = Counter(s.tag for s in got)
    assert by_tag["ok1"] >= 5
    # Without a deadband good values repeat every poll; the bad tag is reported once.
    assert by_tag["missing"] == 1
    assert next(s for s in got if s.tag == "missing").quality == "bad"
    assert {s.value for s in got if s.tag == "ok2"} == {6}
    assert driver.health.errors == 0


async def test_failing_device_warns_once_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    points = [ModbusPoint("a", "holding", 0, "uint16", poll_ms=10)]
    driver = ModbusDriver("gone", endpoint(free_port(), timeout_ms=100), points, backoff=FAST)
    got: list[Sample] = []
    with caplog.at_level(logging.DEBUG, logger="edge_agent.drivers.modbus"):
        task = asyncio.create_task(_collect(driver, got))
        try:
            await _until(lambda: driver.health.errors >= 5)
        finally:
            await driver.close()
            await task
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "gone unavailable" in warnings[0].getMessage()
    assert got == []
    assert driver.health.failing_since is not None
    assert "cannot open 127.0.0.1" in driver.health.last_error


async def test_connection_dropped_mid_poll_recovers_and_others_flow() -> None:
    # Three separate spans per poll, so the cut lands in the middle of a poll.
    regs = {0: 1, 20: 2, 40: 3}
    points = [ModbusPoint(f"r{a}", "holding", a, "uint16", poll_ms=20) for a in regs]
    got_a: list[Sample] = []
    got_b: list[Sample] = []
    async with (
        tcp_server([sim_device(1, holding=regs)]) as port_a,
        tcp_server([sim_device(1, holding=regs)]) as port_b,
        FlakyProxy(port_a) as proxy,
    ):
        a = ModbusDriver("a", endpoint(proxy.port), points, max_gap=0, backoff=FAST)
        b = ModbusDriver("b", endpoint(port_b), points, max_gap=0, backoff=FAST)
        assert len(a.requests) == 3
        tasks = [asyncio.create_task(_collect(a, got_a)), asyncio.create_task(_collect(b, got_b))]
        try:
            await _until(lambda: len(got_a) >= 6)
            for _ in range(3):
                proxy.cut_next_request()
                cuts = proxy.cuts
                await _until(lambda: proxy.cuts > cuts)  # noqa: B023 -- evaluated in this iteration
                seen_a, seen_b = len(got_a), len(got_b)
                await _until(lambda: len(got_a) >= seen_a + 6 and len(got_b) >= seen_b + 6)  # noqa: B023
        finally:
            await a.close()
            await b.close()
            await asyncio.gather(*tasks)
    assert proxy.connections >= 4  # the first one and one reconnect per cut
    assert a.health.errors >= 3
    assert b.health.errors == 0
    for sample in got_a + got_b:
        assert sample.quality == "good"
        assert sample.value == regs[int(sample.tag[1:])]


async def test_units_behind_one_gateway_share_one_connection() -> None:
    points = [ModbusPoint("v", "holding", 0, "uint16", poll_ms=10)]
    pool = BusPool()
    got: list[Sample] = []
    async with tcp_server(
        [sim_device(1, holding={0: 101}), sim_device(2, holding={0: 202})]
    ) as port:
        one = ModbusDriver("one", endpoint(port, unit=1), points, pool=pool)
        two = ModbusDriver("two", endpoint(port, unit=2), points, pool=pool)
        shared = one.bus
        assert shared is two.bus
        tasks = [asyncio.create_task(_collect(d, got)) for d in (one, two)]
        try:
            await _until(lambda: len(got) >= 40)
        finally:
            await one.close()
            await two.close()
            await asyncio.gather(*tasks)
    assert pool.buses() == []  # the last driver to close gave the link back
    assert one.counters["reconnects"] + two.counters["reconnects"] == 1
    assert shared.connects == 1
    assert {s.value for s in got} == {101, 202}


async def test_default_pool_shares_links_and_a_closed_driver_can_be_entered_again() -> None:
    points = [ModbusPoint("v", "holding", 0, "uint16"), ModbusPoint("gap", "holding", 3, "uint16")]
    gateway = [sim_device(1, holding={0: 101}), sim_device(2, holding={0: 202})]
    async with tcp_server(gateway) as port:
        # Built the way the runtime builds them: no pool given.
        one = ModbusDriver("one", endpoint(port, unit=1), points)
        two = ModbusDriver("two", endpoint(port, unit=2), points)
        async with one, two:
            assert one.bus is two.bus
            first = {s.tag: s for s in await one.read()}
            second = {s.tag: s for s in await two.read()}
        assert one.closed
        async with one:  # a runtime retrying a device enters the same driver again
            again = {s.tag: s for s in await one.read()}
            assert one.learned.bad == {"gap"}  # what it learned survives the re-entry
    assert first["v"].value == again["v"].value == 101
    assert second["v"].value == 202
    assert again["gap"].quality == "bad"


async def test_close_lets_the_poll_in_flight_finish_and_hands_over_every_value_read() -> None:
    # A slow counter: every read takes 150 ms and counts up, so a poll is almost always in
    # flight when close() comes, and every value it served is one the driver must hand over.
    served: list[int] = []

    async def count(
        function_code: int, start: int, address: int, n: int, registers: list[int], values: object
    ) -> None:
        if function_code == 3 and values is None:
            # Counted as the request arrives, as a machine counts it, however long it takes.
            registers[0 - start] += 1
            served.append(registers[0 - start])
            await asyncio.sleep(0.15)

    point = ModbusPoint("count", "holding", 0, "uint16", poll_ms=10)
    async with tcp_server([sim_device(1, holding={0: 0}, action=count)]) as port:
        driver = ModbusDriver("counter", endpoint(port, timeout_ms=1000), [point])
        async with driver:
            batches = driver.batches()
            first = await anext(batches)
            # Not consumed meanwhile: what is read waits in the queue; polls take 150 ms each,
            # so 0.5 s + 50 ms puts close() in the middle of one.
            await asyncio.sleep(0.55)
            await driver.close()
            rest = [batch async for batch in batches]
    received = [int(s.value) for batch in (first, *rest) for s in batch]  # type: ignore[arg-type]
    assert received == served


async def test_close_keeps_what_the_poll_under_way_has_read() -> None:
    # Two requests per poll, and close() comes while the first is in flight: its answer is
    # handed over, and the second request is never sent (the driver stops reading first).
    first_in, gate = asyncio.Event(), asyncio.Event()
    reads: list[int] = []

    async def hold(
        function_code: int, start: int, address: int, n: int, registers: list[int], values: object
    ) -> None:
        if function_code == 3 and values is None:
            reads.append(address)
            if len(reads) == 1:
                first_in.set()
                await gate.wait()

    points = [ModbusPoint("a", "holding", 0, "uint16"), ModbusPoint("b", "holding", 100, "uint16")]
    async with tcp_server([sim_device(1, holding={0: 7, 100: 9}, action=hold)]) as port:
        driver = ModbusDriver("two-spans", endpoint(port, timeout_ms=1000), points)
        async with driver:
            assert len(driver.requests) == 2
            batches = driver.batches()
            taking = asyncio.create_task(anext(batches))
            await asyncio.wait_for(first_in.wait(), 10)
            closing = asyncio.create_task(driver.close())
            await asyncio.sleep(0)  # close() has begun
            assert driver.closed
            gate.set()
            batch = await taking
            await closing
            rest = [b async for b in batches]
    assert [(s.tag, s.value) for s in batch] == [("a", 7)]
    assert rest == []
    assert reads == [0]


async def test_a_poll_waits_for_room_before_it_reads() -> None:
    # Nobody takes the batches: the driver reads two polls ahead (QUEUE_BATCHES) and then
    # waits, rather than reading on into memory; a close then hands over all it read.
    served: list[int] = []

    async def count(
        function_code: int, start: int, address: int, n: int, registers: list[int], values: object
    ) -> None:
        if function_code == 3 and values is None:
            registers[0 - start] += 1
            served.append(registers[0 - start])

    point = ModbusPoint("count", "holding", 0, "uint16", poll_ms=10)
    async with tcp_server([sim_device(1, holding={0: 0}, action=count)]) as port:
        driver = ModbusDriver("counter", endpoint(port), [point])
        assert driver.queue_batches == QUEUE_BATCHES == 2
        async with driver:
            batches = driver.batches()
            first = await anext(batches)
            deadline = time.monotonic() + 10
            while len(served) < 1 + QUEUE_BATCHES:
                assert time.monotonic() < deadline, served
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # thirty poll periods: none of them may read
            assert len(served) == 1 + QUEUE_BATCHES
            await driver.close()
            rest = [batch async for batch in batches]
    received = [int(s.value) for batch in (first, *rest) for s in batch]  # type: ignore[arg-type]
    assert received == served == [1, 2, 3]


async def test_a_device_polled_slower_than_scheduled_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every read takes 50 ms, the tag asks for one every 10 ms: about a fifth of the schedule.
    async def slow(function_code: int, *args: object) -> None:
        if function_code == 3:
            await asyncio.sleep(0.05)

    point = ModbusPoint("count", "holding", 0, "uint16", poll_ms=10)
    async with tcp_server([sim_device(1, holding={0: 0}, action=slow)]) as port:
        driver = ModbusDriver("busy", endpoint(port), [point])
        driver.schedule_window_s = 0.5
        async with driver:
            # Taken as the agent takes them: a driver whose batches nobody takes stops polling.
            async def consume() -> None:
                async for _ in driver.batches():
                    pass

            consumer = asyncio.create_task(consume())
            deadline = time.monotonic() + 10
            while driver.health.schedule is None:
                assert time.monotonic() < deadline, "never judged"
                await asyncio.sleep(0.05)
            await driver.close()
            await consumer
    assert driver.health.schedule is not None
    assert 0.1 < driver.health.schedule < 0.4, driver.health.schedule
    assert "device busy: polling at" in caplog.text
    assert "% of schedule (tags every 10 ms)" in caplog.text
