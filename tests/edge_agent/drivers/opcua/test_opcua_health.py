"""An OPC-UA server that stops is offline in the runtime's device health within 10 s, with the
reason in words, and online again within 10 s of its return (default reconnect backoff); a
steady subscribed value is re-sent on its heartbeat."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from asyncua import ua
from opcua_harness import CncServer, endpoint

from edge_agent.drivers.base import Sample
from edge_agent.drivers.health import DeviceHealth
from edge_agent.drivers.opcua import OpcuaDriver, OpcuaPoint, SessionOptions
from tests.harness.devicestate import seconds_until_state

POINTS = [
    OpcuaPoint("spindle_speed", browse_path="/Objects/2:Machine/2:Spindle/2:Speed", sampling_ms=50)
]


async def test_stopped_server_is_offline_within_10s_and_online_within_10s_of_return(
    cnc: CncServer, options: SessionOptions, server_cert: tuple[Path, Path]
) -> None:
    url = endpoint(cnc).url
    driver = OpcuaDriver("mill-01", endpoint(cnc), POINTS, options)
    health = DeviceHealth("mill-01", driver.offline_after_s)
    driver.report_to(health)
    assert driver.offline_after_s == options.timeout_s + 2

    async def drain() -> None:
        async for _ in driver.batches():
            pass

    async with driver:
        consumer = asyncio.create_task(drain())
        assert health.state() == "online"
        await cnc.stop()
        offline_after = await seconds_until_state(health, "offline")
        why = health.why()
        assert why is not None
        assert why.startswith(f"{url}: "), why
        assert " since " in why
        restarted = CncServer(cnc.port, server_cert)
        await restarted.start()
        try:
            online_after = await seconds_until_state(health, "online")
        finally:
            await driver.close()
            await consumer
            await restarted.stop()
    assert offline_after <= 10.0
    assert online_after <= 10.0
    assert health.errors >= 1


async def test_a_steady_subscribed_value_is_resent_on_its_heartbeat(
    cnc: CncServer, options: SessionOptions
) -> None:
    # The server sends a subscribed value once while it holds still; the driver re-sends it every
    # max_interval with the current time, so the hub can tell steady from silent.
    point = OpcuaPoint(
        "spindle_speed",
        browse_path="/Objects/2:Machine/2:Spindle/2:Speed",
        sampling_ms=50,
        max_interval_ms=1000,
    )
    got: list[Sample] = []

    async def collect(driver: OpcuaDriver) -> None:
        async for batch in driver.batches():
            got.extend(batch)

    async with OpcuaDriver("mill-01", endpoint(cnc), [point], options) as driver:
        consumer = asyncio.create_task(collect(driver))
        await asyncio.sleep(4.2)
        await driver.close()
        await consumer
    stamps = [s.ts for s in got if s.tag == "spindle_speed"]
    assert {s.value for s in got} == {1200.0}
    assert all(s.quality == "good" for s in got)
    # The first is the server's own sample, stamped when the value was written (before the
    # session began); then one re-send per max_interval, checked four times per interval.
    heartbeats = stamps[1:]
    assert 3 <= len(heartbeats) <= 5, stamps
    gaps = [b - a for a, b in itertools.pairwise(heartbeats)]
    assert all(1000 <= gap <= 1500 for gap in gaps), gaps


async def test_a_server_reporting_bad_communication_for_every_tag_is_a_device_offline(
    cnc: CncServer, options: SessionOptions
) -> None:
    # A gateway whose machine is gone: the session and its keep-alives are fine, every value
    # comes with BadCommunicationError. The device is offline, with that reason, and back when
    # values are good again.
    driver = OpcuaDriver("mill-01", endpoint(cnc), POINTS, options)
    health = DeviceHealth("mill-01", driver.offline_after_s)
    driver.report_to(health)

    async def drain() -> None:
        async for _ in driver.batches():
            pass

    async with driver:
        consumer = asyncio.create_task(drain())
        await seconds_until_state(health, "online")
        await cnc.write("speed", 0.0, status=ua.StatusCodes.BadCommunicationError)
        offline_after = await seconds_until_state(health, "offline")
        why = health.why()
        assert why is not None
        assert "the server reports BadCommunicationError for every tag" in why, why
        await cnc.write("speed", 1300.0)
        online_after = await seconds_until_state(health, "online")
        await driver.close()
        await consumer
    assert offline_after <= 10.0
    assert online_after <= 10.0
