"""The shipped CompactLogix example profile (device_profiles/rockwell-compactlogix-line.yaml)
loads, and the driver reads every one of its tags — controller and program tags, UDT members by
path, array elements — from cpppo's Logix server holding the tags its comment declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from pylogix import PLC

from edge_agent.config import load_profile
from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.points import enip_points
from edge_agent.drivers.enip.driver import EnipDriver, EnipEndpoint
from tests.edge_agent.drivers.enip.enip_harness import enip_server

PROFILE = (
    Path(__file__).resolve().parents[4] / "device_profiles" / "rockwell-compactlogix-line.yaml"
)
# The controller's tags as the profile's comment declares them (cpppo flattens the UDTs).
TAGS = {
    "LineSpeed": "REAL", "Program:MainProgram.SpeedSetpoint": "REAL",
    "Program:MainProgram.State": "DINT", "Program:MainProgram.BatchID": "SSTRING",
    "Filler.Running": "BOOL", "Filler.Faulted": "BOOL", "Filler.Motor.Current": "REAL",
    "Filler.Motor.Temp": "INT", "Filler.Counts": "DINT[4]", "Heads": "REAL[8]",
}  # fmt: skip
HELD = {
    "LineSpeed": 312.5, "Program:MainProgram.SpeedSetpoint": 320.0,
    "Program:MainProgram.State": 2, "Program:MainProgram.BatchID": "B-2026-1207-03",
    "Filler.Running": True, "Filler.Faulted": False, "Filler.Motor.Current": 12.25,
    "Filler.Motor.Temp": 563, "Filler.Counts[0]": 98_765, "Filler.Counts[1]": 42,
    "Heads[0]": 500.5, "Heads[7]": 499.75,
}  # fmt: skip


def _profile() -> EnipProfile:
    profile, problems = load_profile(PROFILE)
    assert problems == []
    assert isinstance(profile, EnipProfile)
    return profile


async def test_every_tag_of_the_example_is_read_by_its_studio_5000_name() -> None:
    profile = _profile()
    assert any(t.tag.startswith("Program:") for t in profile.tags)
    assert any("]" in t.tag and "." in t.tag for t in profile.tags)  # an array inside a UDT
    with enip_server(TAGS) as server:
        with PLC("127.0.0.1", port=server.port) as plc:
            plc.conn.Socket.close()  # pylogix's constructor leaves two sockets open
            plc.conn.msg_socket.close()
            for tag, value in HELD.items():
                assert plc.Write(tag, value).Status == "Success", tag
        endpoint = EnipEndpoint("127.0.0.1", server.port)
        async with EnipDriver("filler-01", endpoint, enip_points(profile)) as driver:
            samples = {s.tag: s for s in await driver.read()}
            assert {s.quality for s in samples.values()} == {"good"}
            by_tag = {t.tag: t.name for t in profile.tags}
            expected = {by_tag[tag]: value for tag, value in HELD.items()}
            expected["motor_temp"] = pytest.approx(56.3)
            assert {name: s.value for name, s in samples.items()} == expected
            assert await driver.write("speed_setpoint", 250.0) == (320.0, 250.0)
