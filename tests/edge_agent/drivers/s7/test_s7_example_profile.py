"""The shipped S7-1200 example profile (device_profiles/siemens-s7-1200-line.yaml) loads, and the
driver reads every one of its tags from python-snap7's server holding DB10 as its comment lays
it out, inputs and outputs included; its writable tags take writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_profile
from edge_agent.config.points import s7_points
from edge_agent.config.s7_profile import S7Profile
from edge_agent.drivers.s7.address import encode
from edge_agent.drivers.s7.driver import S7Driver, S7Endpoint
from tests.edge_agent.drivers.s7.s7_harness import s7_server

PROFILE = Path(__file__).resolve().parents[4] / "device_profiles" / "siemens-s7-1200-line.yaml"
# What the PLC holds, in engineering units.
VALUES = {
    "line_speed": 85.5, "speed_setpoint": 90.0, "good_count": 1_234_567, "reject_count": 89,
    "product_temp": 41.3, "state_code": 2, "running": True, "faulted": False,
    "guard_open": True, "reset_request": False, "batch_id": "B-2026-1207-03",
    "recipe": "COLA-330", "energy": 12345.678, "estop_ok": True, "horn": True,
}  # fmt: skip


def _profile() -> S7Profile:
    profile, problems = load_profile(PROFILE)
    assert problems == []
    assert isinstance(profile, S7Profile)
    return profile


def _areas(profile: S7Profile) -> dict[str, bytearray]:
    """DB10, inputs and outputs with VALUES where the profile says they are."""
    areas = {"DB": bytearray(80), "I": bytearray(4), "Q": bytearray(4)}
    for point in s7_points(profile):
        data, address = areas[point.address.area], point.address
        value = VALUES[point.name]
        if point.type == "bool":
            data[address.byte] |= int(bool(value)) << (address.bit or 0)
            continue
        raw = value if isinstance(value, str) else (value - point.offset) / point.scale
        encoded = encode(point.type, raw, point.length)
        data[address.byte : address.byte + len(encoded)] = encoded
    return areas


async def test_every_tag_of_the_example_is_read_as_the_plc_holds_it() -> None:
    profile = _profile()
    assert {t.type for t in profile.tags} >= {"real", "int", "dint", "bool", "string", "lreal"}
    areas = _areas(profile)
    with s7_server({10: areas["DB"]}, inputs=areas["I"], outputs=areas["Q"]) as (_srv, port):
        endpoint = S7Endpoint("127.0.0.1", port)
        async with S7Driver("line-01", endpoint, s7_points(profile)) as driver:
            values = {s.tag: s.value for s in await driver.read()}
            assert values == {**VALUES, "product_temp": pytest.approx(41.3)}
            assert await driver.write("speed_setpoint", 60.0) == (90.0, 60.0)
            assert await driver.write("reset_request", True) == (False, True)
            # The bit's neighbours in byte 20 and 21 are untouched.
            after = {s.tag: s.value for s in await driver.read()}
            assert (after["running"], after["guard_open"], after["faulted"]) == (True, True, False)
