"""Writes through the OPC-UA driver against a real asyncua server: each value lands as the
node's own data type and is read back; what the profile forbids never reaches the server, and
what the server refuses is its refusal."""

from __future__ import annotations

import re

import pytest
from asyncua import ua
from opcua_harness import CncServer, endpoint

from edge_agent.drivers.base import CallingDriver, WritingDriver
from edge_agent.drivers.opcua import OpcuaDriver, OpcuaPoint, SessionOptions
from edge_agent.drivers.opcua.points import OpcuaMethod
from edge_agent.errors import WriteFailed, WriteRefused

POINTS = [
    OpcuaPoint("speed", node="ns=2;s=Spindle.Speed", writable=True, min=0, max=20000),
    OpcuaPoint("load", node="ns=2;s=Spindle.Load", writable=True),
    OpcuaPoint("state", node="ns=2;s=Machine.State", writable=True),
    OpcuaPoint("door", node="ns=2;s=Machine.Door", writable=True),
    OpcuaPoint("x", browse_path="/Objects/2:Machine/2:Axis/2:X", writable=True),
    OpcuaPoint("x_readonly", node="ns=2;s=Axis.X"),
]


async def test_values_are_written_as_the_nodes_types_and_read_back(
    cnc: CncServer, options: SessionOptions
) -> None:
    for name in ("speed", "load", "state", "door"):
        await cnc.nodes[name].set_writable()
    async with OpcuaDriver("mill-01", endpoint(cnc), POINTS, options) as driver:
        assert isinstance(driver, WritingDriver)
        # 1500 arrives as an int; the node is a Double, and a Double is what it gets.
        assert await driver.write("speed", 1500) == (1200.0, 1500.0)
        speed = await cnc.nodes["speed"].read_data_value()
        assert speed.Value.VariantType == ua.VariantType.Double
        assert await driver.write("load", 40.0) == (35, 40)
        assert (await cnc.nodes["load"].read_data_value()).Value.VariantType == (
            ua.VariantType.Int64
        )
        assert await driver.write("state", "STOP") == ("RUN", "STOP")
        assert await driver.write("door", True) == (False, True)
        assert await driver.read_tag("door") is True

        for tag, value, why in (
            ("x_readonly", 1.0, "x_readonly is not writable"),
            ("speed", 25000, "25000 is above speed's max 20000"),
            ("load", 2.5, "load is an integer (Int64); 2.5 is not"),
            ("door", "open", "door takes true or false"),
            ("ghost", 1, "mill-01 has no tag 'ghost'; its tags: speed, load"),
        ):
            with pytest.raises(WriteRefused, match=re.escape(why)):
                await driver.write(tag, value)
        assert await cnc.nodes["speed"].read_value() == 1500.0
        # Writable in the profile, not on the server (asyncua answers BadUserAccessDenied):
        # the server's refusal, by name.
        with pytest.raises(
            WriteFailed, match=r"x: the server refused the write \(BadUserAccessDenied\)"
        ):
            await driver.write("x", 11.0)
        assert await cnc.nodes["x"].read_value() == 10.5


async def test_declared_methods_are_called_with_their_argument_types(
    cnc: CncServer, options: SessionOptions
) -> None:
    assert cnc.server is not None
    machine = await cnc.server.nodes.objects.get_child([f"{cnc.ns}:Machine"])
    calls: list[tuple[object, ...]] = []

    async def reset(_parent: object, count: ua.Variant, shift: ua.Variant) -> list[ua.Variant]:
        calls.append((count.Value, count.VariantType, shift.Value))
        return [ua.Variant(count.Value + 1, ua.VariantType.UInt32)]

    await machine.add_method(
        ua.NodeId("Machine.Reset", cnc.ns), ua.QualifiedName("Reset", cnc.ns), reset,
        [ua.VariantType.UInt32, ua.VariantType.String], [ua.VariantType.UInt32],
    )  # fmt: skip
    methods = [
        OpcuaMethod("reset_counter", "ns=2;s=Machine", "ns=2;s=Machine.Reset"),
        OpcuaMethod("ghost", "ns=2;s=Machine", "ns=2;s=Machine.Nothing"),
    ]
    async with OpcuaDriver("mill-01", endpoint(cnc), POINTS, options, methods=methods) as driver:
        assert isinstance(driver, CallingDriver)
        # 7 arrives as an int; the method takes a UInt32, and a UInt32 is what it gets.
        assert await driver.call("reset_counter", [7, "night"]) == [8]
        assert calls == [(7, ua.VariantType.UInt32, "night")]
        for method, args, why in (
            ("reset_counter", [7], "reset_counter takes 2 arguments, not 1"),
            ("reset_counter", [-1, "x"], "outside reset_counter argument 1's type UInt32"),
            ("reboot", [], "mill-01 declares no method 'reboot' in its profile"),
        ):
            with pytest.raises(WriteRefused, match=re.escape(why)):
                await driver.call(method, args)
        with pytest.raises(WriteFailed, match=r"ghost: the server refused the call"):
            await driver.call("ghost", [])
        assert len(calls) == 1
