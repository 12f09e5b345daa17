"""Real-client helpers for the simulator tests: read tags as the agent would, consult the truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from edge_agent.config import ModbusProfile, load_profile, modbus_points
from edge_agent.drivers.modbus.codec import decode_point
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.simulators import Simulator, read_truth
from edge_agent.simulators.profiles import profile_name

ROOT = Path(__file__).resolve().parents[3]
PROFILES = ROOT / "device_profiles"


def points_for(sim: Simulator, machine: str) -> dict[str, ModbusPoint]:
    """The agent's own decoding points for a machine, from its profile in device_profiles/."""
    cls = type(sim.plant.machines[machine])
    profile, problems = load_profile(PROFILES / f"{profile_name(cls)}.yaml")
    assert not problems, problems
    assert isinstance(profile, ModbusProfile)
    return {p.name: p for p in modbus_points(profile)}


async def modbus_client(
    sim: Simulator, machine: str, timeout_s: float = 2.0
) -> AsyncModbusTcpClient:
    """A connected pymodbus client for one simulated machine."""
    dev = sim.devices[machine]
    client = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=timeout_s, retries=0)
    assert await client.connect()
    return client


async def read_raw(
    client: AsyncModbusTcpClient, point: ModbusPoint, count: int | None = None
) -> Any:
    """Issue the one request that reads `point` and return pymodbus' response."""
    n = count or (1 if point.table in ("coil", "discrete") else point.length or _span(point))
    fn = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[point.table]
    return await fn(point.address, count=n, device_id=1)


def _span(point: ModbusPoint) -> int:
    return {"int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}.get(
        point.type, 1
    )


async def read_tag(client: AsyncModbusTcpClient, point: ModbusPoint) -> Any:
    """Read and decode one tag exactly as the agent would."""
    rr = await read_raw(client, point)
    assert not rr.isError(), rr
    if point.table in ("coil", "discrete"):
        return bool(rr.bits[0])
    return decode_point(rr.registers, point)


def now_ms() -> int:
    """Wall clock in epoch ms, the truth file's time base."""
    return int(time.time() * 1000)


def served_between(truth: Path, machine: str, tag: str, t0: int, t1: int) -> list[Any]:
    """Values the truth file says were current at some instant of [t0, t1] (epoch ms)."""
    rows = [r for r in read_truth(truth) if r["machine"] == machine and r["tag"] == tag]
    before = [r for r in rows if int(r["ts"]) < t0]  # type: ignore[call-overload]
    during = [r["value"] for r in rows if t0 <= int(r["ts"]) <= t1]  # type: ignore[call-overload]
    return ([before[-1]["value"]] if before else []) + during
