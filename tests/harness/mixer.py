"""A small Modbus machine for command tests: its profile (a writable float32 setpoint with
limits, a read-only scaled temperature, a writable start coil) and a counter of the write
requests the pymodbus device served — the ground truth of "executed once"."""

from __future__ import annotations

from typing import Any

from pymodbus.simulator import SimDevice

from tests.edge_agent.drivers.modbus.modbus_harness import sim_device

__all__ = ["PROFILE", "MixerDevice"]

PROFILE = """
profile: test-mixer
vendor: Millstream tests
model: Mixer
protocol: modbus
source: written for this test
tags:
  - {name: setpoint, table: holding, address: 0, type: float32, writable: true, min: 0, max: 100}
  - {name: temp, table: holding, address: 2, type: int16, scale: 0.1}
  - {name: start, table: coil, address: 0, type: bool, writable: true}
"""
_WRITES = frozenset({5, 6, 15, 16})


class MixerDevice:
    """Setpoint 10.0 (float32 0x41200000), temp 21.5 °C, start off; counts write requests."""

    def __init__(self) -> None:
        self.writes = 0
        self.device: SimDevice = sim_device(
            1, holding={0: 0x4120, 1: 0, 2: 215}, coils={0: 0}, action=self._action
        )

    async def _action(self, function_code: int, *args: Any) -> None:
        # pymodbus also calls this to build a write's response: count the calls with values.
        if function_code in _WRITES and args[-1] is not None:
            self.writes += 1
