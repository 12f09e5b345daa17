"""The session against a real asyncua server: reads, subscriptions, deadbands and quality."""

from __future__ import annotations

import pytest
from asyncua import ua
from opcua_harness import CncServer, endpoint, until

from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua import Deadband, OpcuaPoint, OpcuaSession, SessionOptions

POINTS = [
    OpcuaPoint("spindle_speed", browse_path="/Objects/2:Machine/2:Spindle/2:Speed"),
    OpcuaPoint("spindle_load", node="ns=2;s=Spindle.Load", mode="poll", sampling_ms=100),
    OpcuaPoint("axis_x", browse_path="/Objects/2:Machine/2:Axis/2:X", sampling_ms=50),
    OpcuaPoint("state", node="ns=2;s=Machine.State"),
    OpcuaPoint("door_open", browse_path="/Objects/2:Machine/2:DoorOpen"),
]


async def test_read_returns_every_point_with_source_timestamps(
    cnc: CncServer, options: SessionOptions
) -> None:
    async with OpcuaSession("mill-01", endpoint(cnc), POINTS, options) as session:
        samples = {s.tag: s for s in await session.read()}
    assert {t: s.value for t, s in samples.items()} == {
        "spindle_speed": 1200.0,
        "spindle_load": 35,
        "axis_x": 10.5,
        "state": "RUN",
        "door_open": False,
    }
    assert all(s.quality == "good" for s in samples.values())
    source_ts = (await cnc.nodes["speed"].read_data_value()).SourceTimestamp
    assert samples["spindle_speed"].ts == int(source_ts.timestamp() * 1000)


async def test_unresolvable_browse_path_is_bad_and_others_still_read(
    cnc: CncServer, options: SessionOptions
) -> None:
    points = [*POINTS, OpcuaPoint("ghost", browse_path="/Objects/2:Machine/2:Nope")]
    async with OpcuaSession("mill-01", endpoint(cnc), points, options) as session:
        samples = {s.tag: s for s in await session.read()}
        assert "ghost" in session.unresolved
    assert samples["ghost"].quality == "bad"
    assert samples["ghost"].value is None
    assert samples["spindle_speed"].value == 1200.0


async def test_subscription_delivers_server_values_and_quality(
    cnc: CncServer, options: SessionOptions
) -> None:
    received: list[Sample] = []

    def seen(tag: str, value: object, quality: str) -> bool:
        return any((s.tag, s.value, s.quality) == (tag, value, quality) for s in received)

    async with OpcuaSession("mill-01", endpoint(cnc), POINTS, options, received.extend) as session:
        await until(lambda: any(s.tag == "spindle_speed" for s in received))
        # The driver's own decoder reads the data changes, not asyncua's (notifications.py):
        # an asyncua upgrade that takes the publish loop back must not go unnoticed.
        assert session.fast_responses > 0
        # Wait for each value: with queue size 1 a server keeps only the newest per sampling tick.
        for rpm in (1500.0, 1800.0):
            await cnc.write("speed", rpm)
            await until(lambda rpm=rpm: seen("spindle_speed", rpm, "good"))
        await cnc.write("x", 11.0, ua.StatusCodes.UncertainLastUsableValue)
        await cnc.write("state", "ALARM", ua.StatusCodes.BadSensorFailure)

        await until(lambda: seen("axis_x", 11.0, "uncertain"))
        # Servers drop the value of a Bad data value; the quality is what must arrive.
        await until(lambda: seen("state", None, "bad"))
    # Poll-mode points are not subscribed: the session alone never emits them.
    assert not any(s.tag == "spindle_load" for s in received)


async def test_absolute_deadband_suppresses_small_changes(
    cnc: CncServer, options: SessionOptions
) -> None:
    point = OpcuaPoint(
        "spindle_speed",
        node="ns=2;s=Spindle.Speed",
        sampling_ms=20,
        deadband=Deadband("absolute", 10.0),
    )
    received: list[Sample] = []
    async with OpcuaSession("mill-01", endpoint(cnc), [point], options, received.extend):
        await until(lambda: len(received) == 1)
        for rpm in (1201.0, 1202.0, 1205.0, 1250.0):
            await cnc.write("speed", rpm)
        await until(lambda: any(s.value == 1250.0 for s in received))
    assert [s.value for s in received] == [1200.0, 1250.0]


@pytest.mark.parametrize("bad_node", ["ns=2;s=Missing"])
async def test_unknown_node_id_reads_bad(
    cnc: CncServer, options: SessionOptions, bad_node: str
) -> None:
    async with OpcuaSession(
        "mill-01", endpoint(cnc), [OpcuaPoint("missing", node=bad_node)], options
    ) as session:
        [sample] = await session.read()
    assert sample.quality == "bad"
