"""Hydraulic press: a stroke cycle with a pressure curve per stroke and slowly warming oil."""

from __future__ import annotations

import math
from typing import ClassVar

from edge_agent.simulators.machines.base import Machine, MachineProtocol, TagSpecs, lag_factor
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["HydraulicPress"]

# Stroke phases and their nominal durations in seconds.
IDLE, APPROACH, PRESS, DWELL, RETURN = 0, 1, 2, 3, 4
_PHASE_S = {IDLE: 0.8, APPROACH: 1.2, PRESS: 1.5, DWELL: 0.5, RETURN: 2.0}
_TOP_MM, _CONTACT_MM, _BOTTOM_MM = 0.0, 250.0, 280.0
_PISTON_M2 = 0.05  # 1 bar on 0.05 m² is 5 kN
_OIL_TAU_S = 600.0


class HydraulicPress(Machine):
    """A 1000 kN hydraulic press cycling every ~6 s."""

    kind = "hydraulic-press"
    prefix = "press"
    # Declared wide: a subclass serves the same physics over another protocol (s7_press.py,
    # logix_conveyor.py).
    protocol: ClassVar[MachineProtocol] = "modbus"
    model = "HP-1000 SIM"
    tags: ClassVar[TagSpecs] = (
        ModbusTag("model", "holding", 0, "string", length=8),
        ModbusTag("pressure", "input", 0, "float32", "bar", lo=0, hi=250, poll_ms=200),
        ModbusTag("ram_position", "input", 2, "int16", "mm", scale=0.1, lo=0, hi=300, poll_ms=200),
        ModbusTag("oil_temp", "input", 3, "int16", "°C", scale=0.1, lo=10, hi=80),
        ModbusTag("cycle_count", "input", 4, "uint32", order="CDAB", lo=0, hi=4e9),
        ModbusTag("stroke_phase", "input", 6, "uint16", lo=0, hi=4, poll_ms=200),
        ModbusTag("press_force", "input", 7, "float32", "kN", order="BADC", lo=0, hi=1250),
        ModbusTag("running", "coil", 0, "bool"),
        ModbusTag("at_top", "discrete", 0, "bool"),
        ModbusTag("pressure_alarm", "discrete", 1, "bool"),
    )

    def _setup(self) -> None:
        self.phase = IDLE
        self.phase_t = 0.0
        self.phase_len = _PHASE_S[IDLE]
        self.peak_bar = 200.0
        self.position = _TOP_MM
        self.pressure = 5.0
        self.cycles = self.rng.randrange(10_000, 500_000)
        self.oil = 35.0 + self.rng.uniform(-3.0, 3.0)
        self.mean_work = 60.0
        self._oil_k = lag_factor(_OIL_TAU_S)
        self._work_k = lag_factor(30.0)
        self.p_noise = self.t_noise = 0.0

    def _next_phase(self) -> None:
        self.phase = (self.phase + 1) % 5
        if self.phase == IDLE:
            self.cycles += 1
        if self.phase == PRESS:
            # Part thickness and die wear vary per stroke.
            self.peak_bar = 200.0 + self.rng.uniform(-15.0, 15.0)
        self.phase_t = 0.0
        self.phase_len = _PHASE_S[self.phase] * self.rng.uniform(0.92, 1.08)

    def _step(self, dt: float) -> None:
        self.phase_t += dt
        if self.phase_t >= self.phase_len:
            self._next_phase()
        f = min(self.phase_t / self.phase_len, 1.0)
        if self.phase == IDLE:
            self.position, target = _TOP_MM, 5.0
        elif self.phase == APPROACH:
            self.position, target = _TOP_MM + (_CONTACT_MM - _TOP_MM) * f, 20.0
        elif self.phase == PRESS:
            self.position = _CONTACT_MM + (_BOTTOM_MM - _CONTACT_MM) * math.sin(f * math.pi / 2)
            target = 20.0 + (self.peak_bar - 20.0) * math.sin(f * math.pi / 2) ** 2
        elif self.phase == DWELL:
            self.position, target = _BOTTOM_MM, self.peak_bar
        else:
            self.position, target = _BOTTOM_MM - (_BOTTOM_MM - _TOP_MM) * f, 15.0
        # The hydraulic circuit is stiff: pressure follows the valve within a few steps.
        self.pressure += (target - self.pressure) * 0.6
        self.mean_work += (self.pressure - self.mean_work) * self._work_k
        self.oil += (30.0 + 0.12 * self.mean_work - self.oil) * self._oil_k
        self.p_noise = self.noise(0.4)
        self.t_noise = self.noise(0.05)

    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""
        pressure = max(0.0, self.pressure + self.p_noise)
        return {
            "model": self.model,
            "pressure": pressure,
            "ram_position": self.position,
            "oil_temp": self.oil + self.t_noise,
            "cycle_count": self.cycles,
            "stroke_phase": self.phase,
            "press_force": pressure * 1e5 * _PISTON_M2 / 1e3,
            "running": True,
            "at_top": self.phase == IDLE,
            "pressure_alarm": pressure > 240.0,
        }
