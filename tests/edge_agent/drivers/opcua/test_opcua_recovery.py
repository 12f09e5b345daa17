"""Recovery: the driver keeps delivering across server restarts and silent network loss."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from opcua_harness import CncServer, FlakyLink, endpoint, until

from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua import (
    OpcuaDriver,
    OpcuaEndpoint,
    OpcuaPoint,
    OpcuaSession,
    SessionOptions,
)
from millstream_common.backoff import Backoff

POINTS = [
    OpcuaPoint("spindle_speed", browse_path="/Objects/2:Machine/2:Spindle/2:Speed", sampling_ms=50),
    OpcuaPoint("spindle_load", node="ns=2;s=Spindle.Load", mode="poll", sampling_ms=100),
]


class Collector:
    """Consumes `driver.subscribe()` in a task, like the agent's buffer writer."""

    def __init__(self, driver: OpcuaDriver) -> None:
        self.samples: list[Sample] = []
        self._task = asyncio.create_task(self._run(driver), name="test-collector")

    async def _run(self, driver: OpcuaDriver) -> None:
        async for sample in driver.subscribe():
            self.samples.append(sample)

    def seen(self, tag: str, value: object) -> bool:
        return any(s.tag == tag and s.value == value and s.quality == "good" for s in self.samples)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def make_driver(url: str, options: SessionOptions) -> OpcuaDriver:
    return OpcuaDriver(
        "mill-01",
        OpcuaEndpoint(url=url),
        POINTS,
        options,
        backoff=Backoff(initial_s=0.2, cap_s=1.0),
    )


@pytest_asyncio.fixture(loop_scope="function")
async def link(cnc: CncServer) -> AsyncIterator[FlakyLink]:
    proxy = FlakyLink(cnc.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_subscribe_yields_subscribed_and_polled_tags(
    cnc: CncServer, options: SessionOptions
) -> None:
    async with make_driver(endpoint(cnc).url, options) as driver:
        collector = Collector(driver)
        await cnc.write("load", 77)
        await until(
            lambda: collector.seen("spindle_load", 77) and collector.seen("spindle_speed", 1200.0)
        )
        await collector.stop()


async def test_server_restart_with_moved_node_resumes_within_10_s(
    cnc: CncServer, options: SessionOptions, server_cert: tuple[Path, Path]
) -> None:
    async with make_driver(endpoint(cnc).url, options) as driver:
        collector = Collector(driver)
        await until(lambda: collector.seen("spindle_speed", 1200.0))
        await cnc.stop()
        # A PLC download renumbers the node behind the same browse path.
        restarted = CncServer(cnc.port, server_cert, speed_node="Spindle.Speed.v2")
        await restarted.start()
        try:
            await restarted.write("speed", 4242.0)
            await until(lambda: collector.seen("spindle_speed", 4242.0), timeout_s=10.0)
            await restarted.write("load", 88)
            await until(lambda: collector.seen("spindle_load", 88), timeout_s=10.0)
            # Samples can arrive while the new session is still being set up; then it counts.
            await until(lambda: driver.stats.reconnects >= 1)
        finally:
            await collector.stop()
            await driver.close()
            await restarted.stop()


async def test_silent_network_loss_is_detected_and_recovered(
    cnc: CncServer, link: FlakyLink, options: SessionOptions
) -> None:
    async with make_driver(link.url, options) as driver:
        collector = Collector(driver)
        await until(lambda: collector.seen("spindle_speed", 1200.0))
        link.cut()
        # Sockets stay open but nothing flows: only the watchdog and timeouts can notice.
        await until(lambda: not driver.connected, timeout_s=15.0)
        assert "no data and no keep-alive" in driver.stats.last_loss
        await cnc.write("speed", 3100.0)
        link.restore()
        await until(lambda: collector.seen("spindle_speed", 3100.0), timeout_s=15.0)
        await collector.stop()


async def test_subscribe_ends_when_the_driver_closes(
    cnc: CncServer, options: SessionOptions
) -> None:
    driver = make_driver(endpoint(cnc).url, options)
    await driver.connect()
    seen: list[Sample] = []

    async def consume() -> None:
        async for sample in driver.subscribe():
            seen.append(sample)

    consumer = asyncio.create_task(consume(), name="test-consumer")
    await until(lambda: bool(seen))
    await driver.close()
    async with asyncio.timeout(10):
        await consumer  # returns by itself: no cancellation needed


async def test_a_cancel_that_meets_a_lost_session_still_cancels(
    cnc: CncServer, options: SessionOptions
) -> None:
    """SIGTERM as the server goes away: Python 3.11's TaskGroup raises the children's errors
    over the parent's cancel, and the supervisor took that for a lost session and reconnected
    forever, so the agent never stopped. The loss is marked the way asyncua's connection-lost
    callback marks it; the cancel follows 0-3 event-loop steps later, which covers it landing
    before the session's loops are told to stop and while they are stopping."""
    for steps in range(4):
        async with OpcuaSession("mill-01", endpoint(cnc), POINTS, options) as session:
            running = asyncio.create_task(session.run_until_lost(), name="test-run-until-lost")
            await asyncio.sleep(0.3)  # the session's loops are up and polling
            assert not running.done()
            # What asyncua's connection-lost callback calls.
            session._mark_lost("connection lost: test")
            for _ in range(steps):
                await asyncio.sleep(0)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(10):
                    await running
