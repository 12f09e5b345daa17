"""The Modbus side of the simulated plant, seen by a real pymodbus client."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from _sim_helpers import modbus_client, now_ms, points_for, read_raw, read_tag, served_between
from pymodbus.exceptions import ModbusIOException

from edge_agent.simulators import Simulator, request

pytestmark = pytest.mark.asyncio(loop_scope="session")
SIM_MACHINES = 4  # the Modbus machines only: no OPC-UA server to start

MODBUS_MACHINES = ["press-01", "conveyor-01", "oven-01", "compressor-01"]


async def control(sim: Simulator, **req: Any) -> dict[str, Any]:
    """Send one request over the real control socket; fail the test on an error answer."""
    assert sim.control is not None
    answer: dict[str, Any] = await request(sim.control.host, sim.control.port, req)
    assert answer["ok"], answer
    return answer


async def until(sim: Simulator, predicate: Any, ticks: int = 100) -> None:
    """Wait tick by tick (bounded) until `predicate()` is true."""
    for _ in range(ticks):
        if await predicate():
            return
        await sim.next_tick()
    raise AssertionError("condition never became true")


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", MODBUS_MACHINES)
async def test_every_tag_decodes_to_a_value_the_truth_file_says_was_served(
    sim: Simulator, machine: str
) -> None:
    """Profile, register image, codec and truth file agree, tag by tag, over a real socket."""
    assert sim.truth is not None
    client = await modbus_client(sim, machine)
    try:
        reads = []
        for name, point in points_for(sim, machine).items():
            t0 = now_ms()
            value = await read_tag(client, point)
            reads.append((name, value, t0, now_ms()))
    finally:
        client.close()
    await sim.next_tick()
    await sim.next_tick()  # the writer flushes when idle
    for name, value, t0, t1 in reads:
        served = served_between(sim.truth.path, machine, name, t0 - 1, t1 + 1)
        assert value in served, (name, value, served)


async def test_values_are_plausible_for_every_type(sim: Simulator) -> None:
    reads: dict[str, dict[str, Any]] = {}
    for machine in MODBUS_MACHINES:
        client = await modbus_client(sim, machine)
        try:
            reads[machine] = {
                n: await read_tag(client, p) for n, p in points_for(sim, machine).items()
            }
        finally:
            client.close()
    assert reads["press-01"]["model"] == "HP-1000 SIM"
    assert 0 <= reads["press-01"]["pressure"] <= 250
    assert 10 <= reads["press-01"]["oil_temp"] <= 80
    assert reads["conveyor-01"]["speed_setpoint"] == pytest.approx(1.2)
    assert 0 <= reads["conveyor-01"]["motor_current"] <= 20
    assert 50 <= reads["oven-01"]["zone1_temp"] <= 300
    assert reads["oven-01"]["zone3_setpoint"] in (220.0, 190.0, 230.0)
    assert 6.5 <= reads["compressor-01"]["discharge_pressure"] <= 8.5
    assert reads["compressor-01"]["running"] is True
    assert reads["compressor-01"]["loaded"] == (reads["compressor-01"]["load_state"] == 2)


# -- anomalies ------------------------------------------------------------------------------


async def test_spike_is_visible(sim: Simulator) -> None:
    point = points_for(sim, "press-01")["oil_temp"]
    client = await modbus_client(sim, "press-01")
    try:
        normal = await read_tag(client, point)
        await control(
            sim,
            cmd="inject",
            machine="press-01",
            tag="oil_temp",
            kind="spike",
            magnitude=100,
            duration=30,
        )
        await sim.next_tick()
        assert await read_tag(client, point) > normal + 90
    finally:
        client.close()


async def test_drift_is_visible_and_grows(sim: Simulator) -> None:
    point = points_for(sim, "compressor-01")["discharge_pressure"]
    client = await modbus_client(sim, "compressor-01")
    try:
        await control(
            sim,
            cmd="inject",
            machine="compressor-01",
            tag="discharge_pressure",
            kind="drift",
            magnitude=2.0,
            duration=60,
        )

        async def drifted() -> bool:
            return bool(await read_tag(client, point) > 10.0)

        await until(sim, drifted)
        first = await read_tag(client, point)
        await until(sim, drifted)
        for _ in range(5):
            await sim.next_tick()
        assert await read_tag(client, point) > first
    finally:
        client.close()


async def test_stuck_value_is_visible(sim: Simulator) -> None:
    point = points_for(sim, "oven-01")["zone1_temp"]
    client = await modbus_client(sim, "oven-01")
    try:
        before = set()
        for _ in range(5):
            before.add(await read_tag(client, point))
            await sim.next_tick()
        assert len(before) > 1  # measurement noise moves it every tick
        await control(sim, cmd="inject", machine="oven-01", tag="zone1_temp", kind="stuck")
        await sim.next_tick()
        during = set()
        for _ in range(5):
            during.add(await read_tag(client, point))
            await sim.next_tick()
        assert len(during) == 1
    finally:
        client.close()


async def test_dropout_is_visible(sim: Simulator) -> None:
    point = points_for(sim, "conveyor-01")["belt_speed"]
    client = await modbus_client(sim, "conveyor-01")
    try:
        await control(sim, cmd="inject", machine="conveyor-01", tag="belt_speed", kind="dropout")
        await sim.next_tick()
        assert await read_tag(client, point) == 0.0
        await control(sim, cmd="clear", machine="conveyor-01")
        await sim.next_tick()
        assert await read_tag(client, point) > 0.0
    finally:
        client.close()


async def test_out_of_range_is_visible(sim: Simulator) -> None:
    point = points_for(sim, "press-01")["pressure"]
    client = await modbus_client(sim, "press-01")
    try:
        await control(sim, cmd="inject", machine="press-01", tag="pressure", kind="out_of_range")
        await sim.next_tick()
        assert await read_tag(client, point) > 250.0
    finally:
        client.close()


async def test_bad_inject_requests_answer_an_error_naming_the_choices(sim: Simulator) -> None:
    assert sim.control is not None
    answer = await request(
        sim.control.host,
        sim.control.port,
        {"cmd": "inject", "machine": "press-01", "tag": "oil_temp", "kind": "x"},
    )
    assert not answer["ok"]
    assert "spike" in answer["error"]


# -- faults ---------------------------------------------------------------------------------


async def test_exception_on_one_tag_leaves_its_neighbours_readable(sim: Simulator) -> None:
    points = points_for(sim, "compressor-01")
    client = await modbus_client(sim, "compressor-01")
    try:
        await control(
            sim, cmd="fault", machine="compressor-01", kind="exception", tag="outlet_temp"
        )
        rr = await read_raw(client, points["outlet_temp"])
        assert rr.isError()
        assert rr.exception_code == 2
        # A block read across the bad tag fails as a whole, exactly like a real device.
        block = await read_raw(client, points["discharge_pressure"], count=11)
        assert block.exception_code == 2
        assert 6.5 <= await read_tag(client, points["discharge_pressure"]) <= 8.5
    finally:
        client.close()


async def test_device_busy_exception_on_every_request(sim: Simulator) -> None:
    point = points_for(sim, "oven-01")["door_open"]
    client = await modbus_client(sim, "oven-01")
    try:
        await control(sim, cmd="fault", machine="oven-01", kind="exception")
        rr = await read_raw(client, point)
        assert rr.exception_code == 6
        await control(sim, cmd="clear_faults", machine="oven-01")
        assert isinstance(await read_tag(client, point), bool)
    finally:
        client.close()


async def test_slow_answers_time_out_a_hasty_client_but_arrive(sim: Simulator) -> None:
    point = points_for(sim, "conveyor-01")["item_count"]
    await control(sim, cmd="fault", machine="conveyor-01", kind="slow", delay_ms=1500)
    hasty = await modbus_client(sim, "conveyor-01", timeout_s=0.3)
    try:
        with pytest.raises(ModbusIOException):
            await read_raw(hasty, point)
    finally:
        hasty.close()
    patient = await modbus_client(sim, "conveyor-01", timeout_s=10)
    try:
        assert await read_tag(patient, point) > 0
    finally:
        patient.close()


def _frame(tid: int, unit: int = 1, fc: int = 4, address: int = 0, count: int = 2) -> bytes:
    # Modbus TCP ADU: MBAP header (tid, protocol 0, length, unit) + PDU (function, address, count).
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, fc, address, count)


async def test_drop_closes_the_open_connection(sim: Simulator) -> None:
    dev = sim.devices["press-01"]
    reader, writer = await asyncio.open_connection(dev.host, dev.port)
    try:
        writer.write(_frame(1))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(9 + 4), 5)
        assert answer[7] == 4  # function code echoed: served normally
        reply = await control(sim, cmd="fault", machine="press-01", kind="drop")
        assert reply["fault"]["closed"] >= 1
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF: the device hung up
    finally:
        writer.close()
    client = await modbus_client(sim, "press-01")  # and it takes new connections at once
    client.close()


async def test_offline_refuses_connections_then_comes_back(sim: Simulator) -> None:
    dev = sim.devices["oven-01"]
    await control(sim, cmd="fault", machine="oven-01", kind="offline", duration=1.0)
    assert sim.control is not None
    again = {"cmd": "fault", "machine": "oven-01", "kind": "offline"}
    answer = await request(sim.control.host, sim.control.port, again)
    assert answer == {"ok": False, "error": "oven-01 is already offline"}
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(dev.host, dev.port)

    async def back() -> bool:
        try:
            _, writer = await asyncio.open_connection(dev.host, dev.port)
        except ConnectionRefusedError:
            return False
        writer.close()
        return True

    await until(sim, back)


async def test_wrong_unit_id_answers_gateway_target_failed(sim: Simulator) -> None:
    dev = sim.devices["press-01"]
    reader, writer = await asyncio.open_connection(dev.host, dev.port)
    try:
        writer.write(_frame(7, unit=9))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(9), 5)
        assert answer[7] == 0x84  # exception response to function 4
        assert answer[8] == 0x0B
    finally:
        writer.close()


async def test_writes_to_read_only_tags_are_refused_with_illegal_address(sim: Simulator) -> None:
    client = await modbus_client(sim, "oven-01")
    try:
        rr = await client.write_register(0, 1, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 2
    finally:
        client.close()


async def test_a_written_setpoint_drives_the_machine(sim: Simulator) -> None:
    """The conveyor's speed setpoint is writable (its profile says so): the belt ramps to it.
    Out of the tag's range is refused with exception 3, as a drive refuses it."""
    point = points_for(sim, "conveyor-01")["speed_setpoint"]
    client = await modbus_client(sim, "conveyor-01")
    try:
        assert point.writable
        assert (await client.write_register(6, 300, device_id=1)).exception_code == 3  # 3 m/s
        rr = await client.write_register(6, 60, device_id=1)  # 0.60 m/s
        assert not rr.isError()
        assert await read_tag(client, point) == pytest.approx(0.6)  # at once, not next tick
        belt = points_for(sim, "conveyor-01")["belt_speed"]

        async def slowed() -> bool:
            return bool(await read_tag(client, belt) <= 0.61)

        await until(sim, slowed, ticks=200)
    finally:
        await client.write_register(6, 120, device_id=1)  # back to 1.2 m/s for the next tests
        client.close()


async def test_slow_answers_keep_their_own_transaction_ids(sim: Simulator) -> None:
    """A late answer must never pass for the answer to a newer request."""
    dev = sim.devices["press-01"]
    await control(sim, cmd="fault", machine="press-01", kind="slow", delay_ms=500)
    reader, writer = await asyncio.open_connection(dev.host, dev.port)
    try:
        writer.write(_frame(1, fc=4, address=0, count=2))  # 4 data bytes back
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(_frame(2, fc=3, address=0, count=8))  # 16 data bytes back
        await writer.drain()
        answers = {}
        for _ in range(2):
            head = await asyncio.wait_for(reader.readexactly(9), 10)
            tid, _, _, _, fc, nbytes = struct.unpack(">HHHBBB", head)
            await reader.readexactly(nbytes)
            answers[tid] = (fc, nbytes)
        assert answers == {1: (4, 4), 2: (3, 16)}
    finally:
        writer.close()
