"""Belt conveyor: items arriving at random, motor current following load, occasional jams."""

from __future__ import annotations

from typing import ClassVar

from edge_agent.simulators.machines.base import Machine, MachineProtocol, TagSpecs, lag_factor
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["Conveyor"]

_NOMINAL_MPS = 1.2
_ITEMS_PER_S = 1.5
_MEAN_S_BETWEEN_JAMS = 900.0
_BELT_M = 12.0


class Conveyor(Machine):
    """A 12 m belt conveyor at 1.2 m/s that jams every quarter hour or so."""

    kind = "conveyor"
    prefix = "conveyor"
    # Declared wide: a subclass serves the same physics over another protocol (s7_press.py,
    # logix_conveyor.py).
    protocol: ClassVar[MachineProtocol] = "modbus"
    model = "BC-1200 SIM"
    tags: ClassVar[TagSpecs] = (
        ModbusTag("belt_speed", "input", 0, "uint16", "m/s", scale=0.01, lo=0, hi=2, poll_ms=500),
        ModbusTag("motor_current", "input", 1, "float32", "A", order="CDAB", lo=0, hi=20),
        ModbusTag("item_count", "input", 3, "uint32", lo=0, hi=4e9),
        ModbusTag("motor_temp", "input", 5, "int16", "°C", scale=0.1, lo=10, hi=100),
        ModbusTag("distance", "input", 6, "float64", "m", order="DCBA", lo=0, hi=1e9),
        ModbusTag("model", "holding", 0, "string", length=6),
        ModbusTag(
            "speed_setpoint", "holding", 6, "uint16", "m/s", scale=0.01, lo=0, hi=2, writable=True
        ),
        ModbusTag("jammed", "discrete", 0, "bool"),
        ModbusTag("running", "discrete", 1, "bool"),
    )

    def _setup(self) -> None:
        self.speed = 0.0
        self.items = self.rng.randrange(0, 2_000_000)
        self.distance = self.rng.uniform(1e5, 1e6)
        self.on_belt = 0.0
        self.jam_left = 0.0
        self.current = 0.0
        self.motor_temp = 30.0 + self.rng.uniform(-2.0, 2.0)
        self._temp_k = lag_factor(300.0)
        self._current_k = lag_factor(0.5)
        self.i_noise = 0.0
        self.setpoint = _NOMINAL_MPS

    def write(self, tag: str, value: Value) -> None:
        """The drive's speed setpoint (m/s); the belt ramps to it."""
        if tag != "speed_setpoint":
            super().write(tag, value)
        self.setpoint = max(0.0, min(2.0, float(value)))

    def _step(self, dt: float) -> None:
        if self.jam_left > 0.0:
            self.jam_left = max(0.0, self.jam_left - dt)
        elif self.rng.random() < dt / _MEAN_S_BETWEEN_JAMS:
            self.jam_left = self.rng.uniform(20.0, 60.0)
        jammed = self.jam_left > 0.0
        target = 0.0 if jammed else self.setpoint
        # The drive ramps up gently but an overload trip stops the belt within a second.
        rate = 3.0 if jammed else 0.4
        self.speed += max(-rate * dt, min(rate * dt, target - self.speed))
        if not jammed and self.rng.random() < _ITEMS_PER_S * dt:
            self.items += 1
            self.on_belt += 1.0
        # Items leave the belt after the travel time; keep the count as a smooth expectation.
        if self.speed > 0.0:
            self.on_belt -= self.on_belt * dt * self.speed / _BELT_M
        self.distance += self.speed * dt
        if jammed and self.speed > 0.05:
            current_target = 14.0  # stalled motor draws high current until the trip
        elif self.speed > 0.0:
            current_target = 2.0 + 0.15 * self.on_belt + 4.0 * self.speed / _NOMINAL_MPS
        else:
            current_target = 0.0
        self.current += (current_target - self.current) * self._current_k
        self.motor_temp += (25.0 + 2.5 * self.current - self.motor_temp) * self._temp_k
        self.i_noise = self.noise(0.05) if self.current > 0.1 else 0.0

    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""
        return {
            "belt_speed": self.speed,
            "motor_current": max(0.0, self.current + self.i_noise),
            "item_count": self.items,
            "motor_temp": self.motor_temp,
            "distance": self.distance,
            "model": self.model,
            "speed_setpoint": self.setpoint,
            "jammed": self.jam_left > 0.0,
            "running": self.speed > 0.01,
        }
